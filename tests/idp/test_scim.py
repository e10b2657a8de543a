"""SCIM 2.0 read side (RFC 7643/7644): discovery, filters in SQL, sorting, pagination, reach,
ETags and bearer-token errors, through real HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest

from core.db import transaction
from idp import accounts
from idp.agencies import AGENCY_KINDS
from idp.models import AccountProfile, Agency, ClientUnitScope, Unit
from idp.official_data import fold_for_search
from tests.conftest import register_client

SCIM = "application/scim+json"
OFFICIAL = "urn:commune-sso:scim:schemas:extension:official:1.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

UNITS = [
    ("15", "province", "Tỉnh Lào Cai", "15"),
    ("14", "province", "Tỉnh Sơn La", "14"),
    ("02656", "ward", "Phường Cam Đường", "15"),
    ("02668", "ward", "Xã Bát Xát", "15"),
    ("03862", "ward", "Xã Mường Bú", "14"),
]
# username, full name, ward, e-mail, citizen ID, externalId, status, minutes after creation
OFFICIALS = [
    (
        "nguyen.van.an",
        "Nguyễn Văn An",
        "02656",
        "an.nv@laocai.gov.vn",
        "015090000001",
        "hr-1",
        "active",
        1,
    ),
    (
        "tran.thi.binh",
        "Trần Thị Bình",
        "02656",
        "binh.tt@laocai.gov.vn",
        "015190000002",
        "hr-2",
        "active",
        2,
    ),
    ("le.van.cuong", "Lê Văn Cường", "02656", None, None, None, "disabled", 3),
    (
        "pham.thi.dung",
        "Phạm Thị Dung",
        "02668",
        "dung.pt@laocai.gov.vn",
        "015190000004",
        "hr-4",
        "active",
        4,
    ),
    (
        "hoang.van.em",
        "Hoàng Văn Em",
        "03862",
        "em.hv@sonla.gov.vn",
        "014090000005",
        "hr-5",
        "active",
        5,
    ),
    (
        "do.thi.xoa",
        "Đỗ Thị Xoa",
        "02656",
        "xoa.dt@laocai.gov.vn",
        "015190000006",
        "hr-6",
        "active",
        6,
    ),
]


@pytest.fixture
def directory(runtime):
    """Units, an agency per ward, officials spread over them, one deleted official in A."""
    now = runtime.clock.now()
    with transaction(runtime.session_factory) as session:
        units = {}
        for code, level, name, province in UNITS:
            units[code] = Unit(
                code=code,
                level=level,
                name=name,
                division_type="xã",
                province_code=province,
                status="active",
                created_at=now,
                updated_at=now,
            )
        session.add_all(units.values())
        session.flush()
        agencies = {
            code: Agency(unit_id=unit.id, kind="peoples_committee", name=f"UBND {unit.name}")
            for code, unit in units.items()
            if unit.level == "ward"
        }
        session.add_all(agencies.values())
        session.flush()
        subjects = {}
        rows = [*OFFICIALS, ("da.xoa", "Người Đã Xoá", "02656", None, None, "hr-x", "active", 7)]
        for username, name, ward, email, cccd, external, status, minutes in rows:
            account = accounts.create(
                session=session,
                clock=runtime.clock,
                passwords=runtime.passwords,
                actor="test",
                username=username,
                full_name=name,
                email=email,
            )
            account.status = status
            account.phone = "+84912345678" if username == "nguyen.van.an" else None
            account.updated_at = now + timedelta(minutes=minutes)
            session.add(
                AccountProfile(
                    account_id=account.id,
                    citizen_id=cccd,
                    unit_id=units[ward].id,
                    agency_id=agencies[ward].id if username != "do.thi.xoa" else None,
                    position="Chủ tịch" if username == "nguyen.van.an" else None,
                    search_name=fold_for_search(name),
                    external_id=external,
                    deleted_at=now if username == "da.xoa" else None,
                    version=3 if username == "nguyen.van.an" else 1,
                )
            )
            subjects[username] = account.subject
    return {"units": {code: unit.id for code, unit in units.items()}, "subjects": subjects}


def provisioning_token(web, runtime, unit_ids, *, scope="scim"):
    client, secret = register_client(
        runtime,
        name="Hệ thống nhân sự",
        redirect_uris=[],
        post_logout_redirect_uris=[],
        grant_types=["client_credentials"],
        scope=scope,
    )
    with transaction(runtime.session_factory) as session:
        session.add_all(
            ClientUnitScope(client_pk=client.id, unit_id=unit_id) for unit_id in unit_ids
        )
    response = web.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, secret)
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture
def province_token(web, runtime, directory):
    """A client scoped to the province of Lào Cai: both its wards, not Sơn La."""
    return provisioning_token(web, runtime, [directory["units"]["15"]])


@pytest.fixture
def ward_token(web, runtime, directory):
    """A client scoped to ward A (02656) only."""
    return provisioning_token(web, runtime, [directory["units"]["02656"]])


def get(web, path, token=None, **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = web.get(f"/scim/v2{path}", headers=headers)
    if response.status_code != 304:
        assert response.headers["content-type"].startswith(SCIM), response.headers
    return response


def names(web, token, query=""):
    response = get(web, f"/Users{query}", token)
    assert response.status_code == 200, response.text
    return [user["userName"] for user in response.json()["Resources"]]


def search(web, token, expression, extra=""):
    return set(names(web, token, f"?filter={quote(expression)}{extra}"))


# --- Discovery -------------------------------------------------------------------------------


def test_service_provider_config_is_truthful(web):
    response = get(web, "/ServiceProviderConfig")
    assert response.status_code == 200
    config = response.json()
    assert config["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]
    assert config["patch"] == {"supported": True}
    assert config["bulk"] == {
        "supported": True,
        "maxOperations": 1000,
        "maxPayloadSize": 1_048_576,
    }
    assert config["changePassword"] == {"supported": False}
    assert config["filter"] == {"supported": True, "maxResults": 500}
    assert config["sort"] == {"supported": True} and config["etag"] == {"supported": True}
    assert config["authenticationSchemes"][0]["type"] == "oauthbearertoken"


def test_resource_types_and_schemas(web):
    types = get(web, "/ResourceTypes").json()
    assert types["totalResults"] == 2
    user_type = types["Resources"][0]
    assert user_type["endpoint"] == "/Users"
    assert {e["schema"] for e in user_type["schemaExtensions"]} == {ENTERPRISE, OFFICIAL}
    assert get(web, "/ResourceTypes/User").json()["id"] == "User"
    schemas = get(web, "/Schemas").json()
    ids = {schema["id"] for schema in schemas["Resources"]}
    assert ids == {
        "urn:ietf:params:scim:schemas:core:2.0:User",
        ENTERPRISE,
        OFFICIAL,
        "urn:ietf:params:scim:schemas:core:2.0:Group",
        "urn:commune-sso:scim:schemas:extension:official:1.0:Group",
    }
    ours = get(web, f"/Schemas/{OFFICIAL}").json()
    assert {a["name"] for a in ours["attributes"]} == {
        "unitCode",
        "unitName",
        "provinceCode",
        "agency",
        "citizenId",
        "position",
    }
    missing = get(web, "/Schemas/urn:nope")
    assert missing.status_code == 404 and missing.json()["status"] == "404"


def _attribute(schema, name):
    return next(a for a in schema["attributes"] if a["name"] == name)


def test_schemas_say_what_is_required_derived_and_suggested(web, ward_token):
    """RFC 7643 §6, §7: what /Schemas publishes is what the server does. Every User and Group
    carries our extension and a unit (required), derived values are returned on request, and
    the suggested values (canonicalValues) are ones this caller can send and get back."""
    user_type, group_type = get(web, "/ResourceTypes").json()["Resources"]
    assert {"schema": OFFICIAL, "required": True} in user_type["schemaExtensions"]
    assert {"schema": ENTERPRISE, "required": False} in user_type["schemaExtensions"]
    assert group_type["schemaExtensions"][0]["required"] is True
    core = get(web, "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").json()
    assert _attribute(core, "active")["required"] is True
    anonymous = get(web, f"/Schemas/{OFFICIAL}").json()
    assert _attribute(anonymous, "unitCode")["required"] is True
    for name in ("unitName", "provinceCode"):
        assert _attribute(anonymous, name)["returned"] == "request"
        assert _attribute(anonymous, name)["mutability"] == "readOnly"
    standard = list(AGENCY_KINDS.values())
    assert _attribute(anonymous, "agency")["canonicalValues"] == standard
    assert "canonicalValues" not in _attribute(anonymous, "unitCode")
    # A client reaching one ward: its unit, and its agencies' names (then the kinds it lacks).
    ours = get(web, f"/Schemas/{OFFICIAL}", ward_token).json()
    assert _attribute(ours, "unitCode")["canonicalValues"] == ["02656"]
    assert _attribute(ours, "agency")["canonicalValues"] == [
        "UBND Phường Cam Đường",
        *standard[1:],
    ]


# --- Authentication --------------------------------------------------------------------------


def test_no_or_bad_token_is_401_with_a_scim_error(web, directory):
    for token in (None, "not-a-token", "a.b.c"):
        response = get(web, "/Users", token)
        assert response.status_code == 401
        body = response.json()
        assert body["schemas"] == [ERROR] and body["status"] == "401"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_token_without_scim_scope_is_403(web, runtime, directory):
    token = provisioning_token(web, runtime, [directory["units"]["15"]], scope="profile")
    response = get(web, "/Users", token)
    assert response.status_code == 403
    assert response.json()["status"] == "403"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_client_without_unit_rows_reaches_nobody(web, runtime, directory):
    token = provisioning_token(web, runtime, [])
    body = get(web, "/Users", token).json()
    assert body["totalResults"] == 0 and body["Resources"] == []
    an = directory["subjects"]["nguyen.van.an"]
    assert get(web, f"/Users/{an}", token).status_code == 404


def test_bulk_needs_a_bulk_request(web, ward_token):
    response = web.post("/scim/v2/Bulk", json={}, headers={"Authorization": f"Bearer {ward_token}"})
    assert response.status_code == 400 and response.json()["scimType"] == "invalidSyntax"


# --- Retrieval -------------------------------------------------------------------------------


def test_user_representation_with_both_extensions(web, ward_token, directory):
    subject = directory["subjects"]["nguyen.van.an"]
    response = get(web, f"/Users/{subject}", ward_token)
    assert response.status_code == 200
    user = response.json()
    assert user["id"] == subject and user["userName"] == "nguyen.van.an"
    assert user["externalId"] == "hr-1"
    assert user["name"] == {"formatted": "Nguyễn Văn An"}
    assert user["displayName"] == "Nguyễn Văn An"
    assert user["emails"] == [{"value": "an.nv@laocai.gov.vn", "type": "work", "primary": True}]
    assert user["phoneNumbers"] == [{"value": "+84912345678", "type": "work"}]
    assert user["active"] is True
    assert user["meta"]["resourceType"] == "User"
    assert user["meta"]["version"] == 'W/"3"'
    assert user["meta"]["location"].endswith(f"/scim/v2/Users/{subject}")
    assert {"created", "lastModified"} <= user["meta"].keys()
    # The enterprise extension is the client's own: derived values are in ours, readOnly and
    # returned on request only (RFC 7643 §7).
    assert ENTERPRISE not in user
    assert user[OFFICIAL] == {
        "unitCode": "02656",
        "agency": "UBND Phường Cam Đường",
        "citizenId": "015090000001",
        "position": "Chủ tịch",
    }
    assert set(user["schemas"]) == {"urn:ietf:params:scim:schemas:core:2.0:User", OFFICIAL}
    assert response.headers["etag"] == 'W/"3"'
    derived = f"{OFFICIAL}:unitName,{OFFICIAL}:provinceCode"
    asked = get(web, f"/Users/{subject}?attributes={derived}", ward_token).json()
    assert asked[OFFICIAL] == {"unitName": "Phường Cam Đường", "provinceCode": "15"}
    listed = get(web, f"/Users?attributes={derived}", ward_token).json()["Resources"]
    assert {"unitName": "Phường Cam Đường", "provinceCode": "15"} in [r[OFFICIAL] for r in listed]


def test_etag_and_if_none_match(web, ward_token, directory):
    subject = directory["subjects"]["nguyen.van.an"]
    assert (
        get(web, f"/Users/{subject}", ward_token, **{"If-None-Match": 'W/"3"'}).status_code == 304
    )
    changed = get(web, f"/Users/{subject}", ward_token, **{"If-None-Match": 'W/"2"'})
    assert changed.status_code == 200 and changed.headers["etag"] == 'W/"3"'


def test_out_of_reach_missing_and_deleted_users_are_the_same_404(web, ward_token, directory):
    for username in ("pham.thi.dung", "hoang.van.em", "da.xoa"):
        response = get(web, f"/Users/{directory['subjects'][username]}", ward_token)
        assert response.status_code == 404
        assert response.json() == {"schemas": [ERROR], "status": "404", "detail": "No such user."}
    assert get(web, "/Users/unknown-subject", ward_token).json()["detail"] == "No such user."


def test_attributes_parameter_selects_what_is_returned(web, ward_token, directory):
    subject = directory["subjects"]["nguyen.van.an"]
    user = get(web, f"/Users/{subject}?attributes=userName", ward_token).json()
    assert user["userName"] == "nguyen.van.an" and user["id"] == subject
    assert "emails" not in user and "name" not in user


# --- Search ----------------------------------------------------------------------------------


def test_lists_only_officials_in_reach_and_not_deleted(web, ward_token, province_token):
    assert set(names(web, ward_token)) == {
        "nguyen.van.an",
        "tran.thi.binh",
        "le.van.cuong",
        "do.thi.xoa",
    }
    assert set(names(web, province_token)) == {
        "nguyen.van.an",
        "tran.thi.binh",
        "le.van.cuong",
        "do.thi.xoa",
        "pham.thi.dung",
    }
    # Filters never widen the reach.
    assert search(web, ward_token, 'userName eq "hoang.van.em"') == set()
    assert search(web, ward_token, 'externalId eq "hr-x"') == set()


def test_user_name_eq_ignores_case(web, ward_token):
    assert search(web, ward_token, 'userName eq "Nguyen.Van.AN"') == {"nguyen.van.an"}
    assert search(web, ward_token, 'USERNAME Eq "nguyen.van.an"') == {"nguyen.van.an"}
    qualified = 'urn:ietf:params:scim:schemas:core:2.0:User:userName eq "NGUYEN.VAN.AN"'
    assert search(web, ward_token, qualified) == {"nguyen.van.an"}


def test_names_match_without_diacritics_or_case(web, province_token):
    assert search(web, province_token, 'name.formatted co "van"') == {
        "nguyen.van.an",
        "le.van.cuong",
    }
    assert search(web, province_token, 'displayName sw "NGUYỄN"') == {"nguyen.van.an"}
    assert search(web, province_token, 'displayName sw "do thi"') == {"do.thi.xoa"}
    assert search(web, province_token, 'name.formatted eq "tran thi binh"') == {"tran.thi.binh"}
    assert search(web, province_token, 'name.formatted ew "dung"') == {"pham.thi.dung"}


def test_each_operator(web, province_token):
    t = province_token
    assert search(web, t, 'userName ne "nguyen.van.an"') == {
        "tran.thi.binh",
        "le.van.cuong",
        "do.thi.xoa",
        "pham.thi.dung",
    }
    assert search(web, t, 'userName co "thi"') == {"tran.thi.binh", "pham.thi.dung", "do.thi.xoa"}
    assert search(web, t, 'userName sw "tran"') == {"tran.thi.binh"}
    assert search(web, t, 'emails.value ew "@LAOCAI.gov.vn"') == {
        "nguyen.van.an",
        "tran.thi.binh",
        "pham.thi.dung",
        "do.thi.xoa",
    }
    assert search(web, t, 'emails eq "AN.NV@laocai.gov.vn"') == {"nguyen.van.an"}
    assert search(web, t, "externalId pr") == {
        "nguyen.van.an",
        "tran.thi.binh",
        "pham.thi.dung",
        "do.thi.xoa",
    }
    assert search(web, t, "phoneNumbers pr") == {"nguyen.van.an"}
    assert search(web, t, 'phoneNumbers.value eq "+84912345678"') == {"nguyen.van.an"}
    assert search(web, t, "active eq false") == {"le.van.cuong"}
    assert search(web, t, 'externalId eq "hr-2"') == {"tran.thi.binh"}
    # externalId is case-exact (RFC 7643 §3.1), on SQLite as on PostgreSQL.
    assert search(web, t, 'externalId eq "HR-2"') == set()
    assert search(web, t, 'externalId co "R-"') == set()
    assert search(web, t, 'externalId sw "hr-"') == {
        "nguyen.van.an",
        "tran.thi.binh",
        "pham.thi.dung",
        "do.thi.xoa",
    }
    assert search(web, t, 'externalId co "%"') == set()  # LIKE wildcards are escaped


def test_extension_attributes(web, province_token):
    t = province_token
    assert search(web, t, f'{OFFICIAL}:unitCode eq "02668"') == {"pham.thi.dung"}
    assert search(web, t, 'unitCode eq "02668"') == {"pham.thi.dung"}
    assert search(web, t, 'citizenId eq "015190000002"') == {"tran.thi.binh"}
    assert search(web, t, 'provinceCode eq "15"') == set(names(web, t))
    assert search(web, t, 'agency co "bát xát"') == {"pham.thi.dung"}
    assert search(web, t, "agency pr") == set(names(web, t)) - {"do.thi.xoa"}
    assert search(web, t, f'{OFFICIAL}:unitName eq "xã bát xát"') == {"pham.thi.dung"}
    assert search(web, t, 'position eq "chủ tịch"') == {"nguyen.van.an"}


def test_last_modified_comparisons(web, province_token, clock):
    base = clock.now()

    def at(minutes):
        return (base + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    t = province_token
    assert search(web, t, f'meta.lastModified gt "{at(3)}"') == {"pham.thi.dung", "do.thi.xoa"}
    assert search(web, t, f'meta.lastModified ge "{at(3)}"') == {
        "le.van.cuong",
        "pham.thi.dung",
        "do.thi.xoa",
    }
    assert search(web, t, f'meta.lastModified lt "{at(2)}"') == {"nguyen.van.an"}
    assert search(web, t, f'meta.lastModified le "{at(2)}"') == {"nguyen.van.an", "tran.thi.binh"}


def test_and_or_not_with_parentheses(web, province_token):
    t = province_token
    assert search(web, t, 'userName sw "n" or userName sw "t"') == {
        "nguyen.van.an",
        "tran.thi.binh",
    }
    assert search(web, t, 'active eq true and (unitCode eq "02668" or userName sw "do")') == {
        "pham.thi.dung",
        "do.thi.xoa",
    }
    # not() keeps officials that lack the attribute: absent is "not equal", never unknown.
    assert search(web, t, 'not (externalId eq "hr-1")') == {
        "tran.thi.binh",
        "le.van.cuong",
        "pham.thi.dung",
        "do.thi.xoa",
    }
    assert search(web, t, 'externalId ne "hr-1" and not (active eq true)') == {"le.van.cuong"}


@pytest.mark.parametrize(
    ("expression", "where"),
    [
        ('userName eq "x" and', "column"),
        ("userName eq", "column"),
        ('userName xx "x"', "column"),
        ('(userName eq "x"', "column"),
        ('ims eq "x"', "ims"),
        ('active co "x"', "active"),
        ('meta.lastModified gt "yesterday"', "yesterday"),
        ('emails[nickName eq "x"]', "emails[nickName]"),
    ],
)
def test_invalid_filter_is_400_invalid_filter(web, ward_token, expression, where):
    response = get(web, f"/Users?filter={quote(expression)}", ward_token)
    assert response.status_code == 400
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == "400" and body["scimType"] == "invalidFilter"
    assert where in body["detail"]


def test_pagination_and_total_results(web, province_token):
    every = names(web, province_token, "?sortBy=userName")
    assert len(every) == 5
    first = get(web, "/Users?sortBy=userName&startIndex=1&count=2", province_token).json()
    assert first["totalResults"] == 5 and first["itemsPerPage"] == 2 and first["startIndex"] == 1
    third = get(web, "/Users?sortBy=userName&startIndex=5&count=2", province_token).json()
    assert [u["userName"] for u in third["Resources"]] == every[4:]
    pages = [
        names(web, province_token, f"?sortBy=userName&startIndex={start}&count=2")
        for start in (1, 3, 5)
    ]
    assert [name for page in pages for name in page] == every
    only_total = get(web, "/Users?count=0", province_token).json()
    assert only_total["totalResults"] == 5 and only_total["Resources"] == []
    assert names(web, province_token, "?startIndex=0&sortBy=userName") == every  # below 1 = 1
    beyond = get(web, "/Users?startIndex=99", province_token).json()
    assert beyond["totalResults"] == 5 and beyond["Resources"] == []
    bad = get(web, "/Users?count=many", province_token)
    assert bad.status_code == 400 and bad.json()["scimType"] == "invalidValue"


def test_filtered_total_results(web, province_token):
    expression = quote('userName co "thi"')
    body = get(web, f"/Users?filter={expression}&count=1", province_token).json()
    assert body["totalResults"] == 3 and len(body["Resources"]) == 1


def test_sorting(web, province_token):
    t = province_token
    by_name = names(web, t, "?sortBy=userName")
    assert by_name == sorted(by_name)
    assert names(web, t, "?sortBy=userName&sortOrder=descending") == by_name[::-1]
    # Vietnamese names sort by their folded form: Đỗ with the D's, before Lê.
    assert names(web, t, "?sortBy=name.formatted") == [
        "do.thi.xoa",
        "le.van.cuong",
        "nguyen.van.an",
        "pham.thi.dung",
        "tran.thi.binh",
    ]
    assert names(web, t, "?sortBy=meta.lastModified&sortOrder=descending") == [
        "do.thi.xoa",
        "pham.thi.dung",
        "le.van.cuong",
        "tran.thi.binh",
        "nguyen.van.an",
    ]
    bad = get(web, "/Users?sortBy=ims", t)
    assert bad.status_code == 400 and bad.json()["scimType"] == "invalidValue"


def test_unknown_paths_and_methods_answer_a_scim_error(web, ward_token):
    """RFC 7644 §3.12: an Error message, not the OAuth-style JSON of the rest of the app."""
    for method, path, status in (
        ("GET", "/scim/v2/Nope", 404),
        ("GET", "/scim/v2/Users/a/b", 404),
        ("DELETE", "/scim/v2/ServiceProviderConfig", 405),
    ):
        response = web.request(method, path, headers={"Authorization": f"Bearer {ward_token}"})
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"].startswith(SCIM)
        body = response.json()
        assert body["schemas"] == [ERROR] and body["status"] == str(status)
    assert "GET" in response.headers["allow"]
