"""The request shapes real SCIM clients send, built from their public documentation
(Microsoft Entra ID "Tutorial: Develop and plan provisioning for a SCIM endpoint" request
examples; Okta "SCIM 2.0 protocol reference"), and the round trip of every attribute
/Schemas publishes (RFC 7643 §4.1, §4.3), through real HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

from core.clock import SystemClock
from core.db import transaction
from idp import accounts
from idp.passwords import PasswordHasher
from tests.conftest import OFFICIAL_PASSWORD
from tests.idp import test_scim as read_side
from tests.idp.oidc_flow import authorize_params, log_in, pkce_pair, query_of
from tests.idp.test_scim import ERROR, OFFICIAL, SCIM, get
from tests.idp.test_scim_writes import CORE, PATCH, error_of, send

directory = read_side.directory
province_token = read_side.province_token
ward_token = read_side.ward_token

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def entra_user(**overrides):
    """Entra ID's POST /Users: a UPN as userName, its object id as externalId, no extension of
    ours (the client's own unit is used)."""
    body = {
        "schemas": [CORE, ENTERPRISE],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "An.NV@LaoCai.gov.vn",
        "active": True,
        "displayName": "Nguyễn Văn An (Phòng 2)",
        "emails": [{"primary": True, "type": "work", "value": "An.NV@laocai.gov.vn"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Nguyễn Văn An", "familyName": "Nguyễn", "givenName": "An"},
        "title": "Chuyên viên",
        ENTERPRISE: {"department": "Phòng Tư pháp", "employeeNumber": "NV-0042"},
    }
    body.update(overrides)
    return body


def patch(web, token, subject, *operations):
    body = {"schemas": [PATCH], "Operations": list(operations)}
    return send(web, "PATCH", f"/Users/{subject}", token, body)


def test_entra_create_with_a_upn_then_sign_in_with_it(web, runtime, rp, ward_token):
    created = send(web, "POST", "/Users", ward_token, entra_user())
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["userName"] == "an.nv@laocai.gov.vn"  # caseExact=false: stored lowercase
    assert user["displayName"] == "Nguyễn Văn An (Phòng 2)"  # kept beside the name parts
    assert user["name"] == {"formatted": "Nguyễn Văn An", "familyName": "Nguyễn", "givenName": "An"}
    assert user["title"] == "Chuyên viên"
    # The enterprise extension is the client's own; the unit is derived, in ours.
    assert user[ENTERPRISE] == {"department": "Phòng Tư pháp", "employeeNumber": "NV-0042"}
    assert user[OFFICIAL] == {"unitCode": "02656"}  # unitName is returned on request
    # Entra's lookup before creating, and a second create in another case: 409.
    found = get(web, '/Users?filter=userName eq "AN.NV@laocai.gov.vn"', ward_token).json()
    assert [r["id"] for r in found["Resources"]] == [user["id"]]
    again = send(
        web, "POST", "/Users", ward_token, {"schemas": [CORE], "userName": "an.nv@LAOCAI.gov.vn"}
    )
    assert "userName" in error_of(again, 409, "uniqueness")
    # The official signs in at the login form with the e-mail-shaped username, any case.
    with transaction(runtime.session_factory) as session:
        account = accounts.get_by_username(session, "an.nv@laocai.gov.vn")
        accounts.set_password(
            session=session,
            clock=SystemClock(),
            passwords=PasswordHasher(runtime.settings),
            actor="test",
            account=account,
            password=OFFICIAL_PASSWORD,
        )
    client, _ = rp
    _, challenge = pkce_pair()
    landed = log_in(
        web, authorize_params(client.client_id, challenge), "An.NV@LaoCai.gov.vn", OFFICIAL_PASSWORD
    )
    assert "code" in query_of(landed.headers["location"])


def test_only_username_is_required_and_names_take_any_printable_text(web, ward_token):
    bare = send(web, "POST", "/Users", ward_token, {"schemas": [CORE], "userName": "chi.ten"})
    assert bare.status_code == 201, bare.text
    assert "name" not in bare.json() and "displayName" not in bare.json()
    named = send(
        web,
        "POST",
        "/Users",
        ward_token,
        {"schemas": [CORE], "userName": "so.hai", "displayName": "Trần Văn B (2) – Tổ 3"},
    )
    assert named.status_code == 201, named.text
    assert named.json()["displayName"] == "Trần Văn B (2) – Tổ 3"


def test_entra_patch_shapes(web, ward_token, directory):
    manager = directory["subjects"]["nguyen.van.an"]
    subject = send(web, "POST", "/Users", ward_token, entra_user()).json()["id"]
    response = patch(
        web,
        ward_token,
        subject,
        {"op": "Replace", "path": "active", "value": "False"},
        {
            "op": "Add",
            "value": {
                "name.givenName": "Bình",
                f"{ENTERPRISE}:department": "Phòng Nội vụ",
                "title": "Trưởng phòng",
            },
        },
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "binh@laocai.gov.vn"},
        {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "0912 000 111"},
        {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": manager},
    )
    assert response.status_code == 200, response.text
    user = response.json()
    assert user["active"] is False
    assert user["name"]["givenName"] == "Bình" and user["name"]["familyName"] == "Nguyễn"
    assert user["title"] == "Trưởng phòng"
    assert user[ENTERPRISE]["department"] == "Phòng Nội vụ"
    assert user[ENTERPRISE]["employeeNumber"] == "NV-0042"
    assert user[ENTERPRISE]["manager"]["value"] == manager
    assert user[ENTERPRISE]["manager"]["$ref"].endswith(f"/Users/{manager}")
    assert user["emails"] == [{"primary": True, "type": "work", "value": "binh@laocai.gov.vn"}]
    assert user["phoneNumbers"] == [{"type": "mobile", "value": "0912 000 111"}]  # as sent
    # Filters and sorting over what was stored.
    t = ward_token
    assert read_side.search(web, t, f'{ENTERPRISE}:department eq "phòng nội vụ"') == {
        "an.nv@laocai.gov.vn"
    }
    assert read_side.search(web, t, 'title sw "trưởng"') == {"an.nv@laocai.gov.vn"}
    assert read_side.search(web, t, 'name.givenName eq "bình"') == {"an.nv@laocai.gov.vn"}
    assert read_side.search(web, t, f'{ENTERPRISE}:manager.value eq "{manager}"') == {
        "an.nv@laocai.gov.vn"
    }
    sorted_page = get(web, "/Users?sortBy=name.givenName&sortOrder=descending", t)
    assert sorted_page.status_code == 200
    removed = patch(web, t, subject, {"op": "Remove", "path": f"{ENTERPRISE}:manager"})
    assert "manager" not in removed.json()[ENTERPRISE]


def test_okta_put_of_the_whole_user_and_patch_active(web, runtime, ward_token):
    created = send(web, "POST", "/Users", ward_token, entra_user()).json()
    okta = {
        "schemas": [CORE],
        "id": created["id"],
        "userName": "an.nv@laocai.gov.vn",
        "name": {"givenName": "An", "familyName": "Nguyễn"},
        "emails": [{"primary": True, "value": "an.nv@laocai.gov.vn", "type": "work"}],
        "displayName": "An Nguyễn",
        "locale": "vi-VN",
        "externalId": "00u1ab2cdEFGHIJ3k4l5",
        "groups": [],
        "active": True,
    }
    replaced = send(web, "PUT", f"/Users/{created['id']}", ward_token, okta)
    assert replaced.status_code == 200, replaced.text
    user = replaced.json()
    assert user["locale"] == "vi-VN" and user["displayName"] == "An Nguyễn"
    assert user["name"] == {"givenName": "An", "familyName": "Nguyễn"}
    assert "title" not in user and ENTERPRISE not in user  # PUT replaces: what is absent goes
    off = patch(web, ward_token, created["id"], {"op": "replace", "value": {"active": False}})
    assert off.status_code == 200 and off.json()["active"] is False
    with transaction(runtime.session_factory) as session:
        account = accounts.get_by_username(session, "an.nv@laocai.gov.vn")
        assert account.status == "disabled" and account.full_name == "Nguyễn An"


def test_every_published_attribute_round_trips(web, ward_token):
    body = {
        "schemas": [CORE, ENTERPRISE],
        "userName": "day.du",
        "name": {
            "formatted": "Ông Lê Văn Đủ Jr",
            "familyName": "Lê",
            "givenName": "Đủ",
            "middleName": "Văn",
            "honorificPrefix": "Ông",
            "honorificSuffix": "Jr",
        },
        "displayName": "Đủ Lê",
        "nickName": "Đủ",
        "profileUrl": "https://laocai.gov.vn/du",
        "title": "Kế toán",
        "userType": "Employee",
        "preferredLanguage": "vi-VN",
        "locale": "vi-VN",
        "timezone": "Asia/Ho_Chi_Minh",
        "active": True,
        "emails": [
            {"value": "du@laocai.gov.vn", "type": "work", "primary": True},
            {"value": "du@example.com", "type": "home"},
        ],
        "phoneNumbers": [{"value": "+84912000222", "type": "work", "primary": True}],
        "ims": [{"value": "du.le", "type": "skype"}],
        "photos": [{"value": "https://laocai.gov.vn/du.jpg", "type": "photo"}],
        "addresses": [
            {
                "type": "work",
                "streetAddress": "1 Hoàng Liên",
                "locality": "Lào Cai",
                "country": "VN",
                "primary": True,
            }
        ],
        "entitlements": [{"value": "ke-toan"}],
        "roles": [{"value": "approver", "primary": True}],
        "x509Certificates": [{"value": "MIIB"}],
        ENTERPRISE: {
            "employeeNumber": "7",
            "costCenter": "CC1",
            "organization": "UBND tỉnh",
            "division": "Khối 1",
            "department": "Phòng Tài chính",
        },
    }
    created = send(web, "POST", "/Users", ward_token, body)
    assert created.status_code == 201, created.text
    shown = get(web, f"/Users/{created.json()['id']}", ward_token).json()
    for key, value in body.items():
        if key != "schemas":
            assert shown[key] == value, key
    # RFC 7643 §2.4: no more than one primary value.
    two = dict(body, userName="hai.chinh")
    two["emails"] = [
        {"value": "a@laocai.gov.vn", "primary": True},
        {"value": "b@x.vn", "primary": "True"},
    ]
    assert "emails" in error_of(send(web, "POST", "/Users", ward_token, two), 400, "invalidValue")


def test_group_membership_patch_with_a_value_filter(web, ward_token, directory):
    an = directory["subjects"]["nguyen.van.an"]
    group = send(web, "POST", "/Groups", ward_token, {"schemas": [GROUP], "displayName": "Tổ 1"})
    group_id = group.json()["id"]
    body = {
        "schemas": [PATCH],
        "Operations": [{"op": "Add", "path": "members", "value": [{"value": an}]}],
    }
    added = send(web, "PATCH", f"/Groups/{group_id}", ward_token, body)
    assert [m["value"] for m in added.json()["members"]] == [an]
    body["Operations"] = [{"op": "Remove", "path": f'members[value eq "{an}"]'}]
    removed = send(web, "PATCH", f"/Groups/{group_id}", ward_token, body)
    assert removed.status_code == 200 and not removed.json().get("members")


def test_unknown_paths_answer_a_scim_error(web, ward_token):
    for path in ("/scim/v2/Nope", "/scim/v2", "/scim/v2/Users/x/y"):
        response = web.get(path, headers={"Authorization": f"Bearer {ward_token}"})
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith(SCIM)
        assert response.json()["schemas"] == [ERROR] and response.json()["status"] == "404"
    wrong = web.delete("/scim/v2/Users", headers={"Authorization": f"Bearer {ward_token}"})
    assert wrong.status_code == 405 and wrong.json()["status"] == "405"
    assert "POST" in wrong.headers["allow"]
