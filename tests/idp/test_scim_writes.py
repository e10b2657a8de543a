"""SCIM 2.0 write side (RFC 7644 §3.3, §3.5, §3.6): POST, PUT, PATCH, DELETE with ETags,
uniqueness, reach, soft deletion and audit, through real HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from core.audit import AuditEntry
from core.db import transaction
from idp import sessions
from idp.models import Account, AccountMove, AccountProfile, BrowserSession, LifecycleEvent
from tests.idp import test_scim as read_side
from tests.idp.test_scim import ERROR, OFFICIAL, SCIM, get

# The read side's fixtures: its directory of units and officials, and provisioning clients.
directory = read_side.directory
province_token = read_side.province_token
ward_token = read_side.ward_token

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def send(web, method, path, token, body=None, **headers):
    headers["Authorization"] = f"Bearer {token}"
    response = web.request(method, f"/scim/v2{path}", json=body, headers=headers)
    if response.status_code != 204:
        assert response.headers["content-type"].startswith(SCIM), response.text
    return response


def new_user(**overrides):
    body = {
        "schemas": [CORE, OFFICIAL],
        "userName": "Vu.Van.Moi",
        "name": {"formatted": "Vũ  Văn Mới"},
        "emails": [
            {"value": "khac@laocai.gov.vn", "type": "home"},
            {"value": "moi.vv@LaoCai.gov.vn", "type": "work", "primary": True},
        ],
        "phoneNumbers": [{"value": "0912 345 679", "type": "work"}],
        "externalId": "hr-100",
        OFFICIAL: {
            "unitCode": "02656",
            "citizenId": "015090000100",
            "agency": "peoples_committee",
            "position": "Công chức  tư pháp",
        },
    }
    body.update(overrides)
    return body


def error_of(response, status, scim_type=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    assert body.get("scimType") == scim_type
    return body["detail"]


def audit_actions(runtime, target):
    with transaction(runtime.session_factory) as session:
        return [
            (e.actor, e.action)
            for e in session.scalars(
                select(AuditEntry).where(AuditEntry.target == target).order_by(AuditEntry.seq)
            )
        ]


def events(runtime, subject):
    with transaction(runtime.session_factory) as session:
        return [
            e.kind
            for e in session.scalars(
                select(LifecycleEvent)
                .where(LifecycleEvent.account_subject == subject)
                .order_by(LifecycleEvent.id)
            )
        ]


def client_actor(runtime):
    with transaction(runtime.session_factory) as session:
        actors = {a for (a,) in session.execute(select(AuditEntry.actor)) if "client:" in a}
    assert len(actors) == 1
    return actors.pop()


# --- POST ------------------------------------------------------------------------------------


def test_create_normalises_and_answers_201_with_location_and_etag(web, runtime, ward_token):
    response = send(web, "POST", "/Users", ward_token, new_user())
    assert response.status_code == 201, response.text
    user = response.json()
    assert response.headers["location"] == user["meta"]["location"]
    assert response.headers["etag"] == user["meta"]["version"] == 'W/"1"'
    assert user["userName"] == "vu.van.moi"
    assert user["name"] == {"formatted": "Vũ Văn Mới"} and "displayName" not in user
    # Every e-mail and phone is shown as sent, in order (a directory comparing what it sent
    # with what it reads back must see no difference, or it pushes again forever)...
    assert user["emails"] == [
        {"value": "khac@laocai.gov.vn", "type": "home"},
        {"value": "moi.vv@LaoCai.gov.vn", "type": "work", "primary": True},
    ]
    assert user["phoneNumbers"][0]["value"] == "0912 345 679"
    assert user["active"] is True and user["externalId"] == "hr-100"
    ours = user[OFFICIAL]
    assert ours["unitCode"] == "02656" and ours["citizenId"] == "015090000100"
    assert ours["position"] == "Công chức tư pháp" and ours["agency"] == "UBND Phường Cam Đường"
    assert get(web, f"/Users/{user['id']}", ward_token).json()["userName"] == "vu.van.moi"
    with transaction(runtime.session_factory) as session:
        account = session.scalar(select(Account).where(Account.subject == user["id"]))
        assert account.password_hash is None
        # ...while the columns the rest of the service uses hold the normalised primaries.
        assert (account.email, account.phone) == ("moi.vv@laocai.gov.vn", "+84912345679")
    actor = client_actor(runtime)
    assert actor.startswith("client:")
    assert (actor, "scim.user.create") in audit_actions(runtime, "account:vu.van.moi")


def test_create_duplicates_are_409_uniqueness(web, ward_token):
    taken = send(web, "POST", "/Users", ward_token, new_user(userName="NGUYEN.van.AN"))
    assert "userName" in error_of(taken, 409, "uniqueness")
    same_cccd = new_user(userName="khac.nguoi")
    same_cccd[OFFICIAL] = {**same_cccd[OFFICIAL], "citizenId": "015090000001"}
    assert "citizenId" in error_of(
        send(web, "POST", "/Users", ward_token, same_cccd), 409, "uniqueness"
    )
    # A deleted official's username stays taken (the row is kept).
    deleted = send(web, "POST", "/Users", ward_token, new_user(userName="da.xoa"))
    error_of(deleted, 409, "uniqueness")


def test_create_invalid_values_are_400_naming_the_attribute(web, runtime, ward_token):
    cases = [
        (new_user(userName="có\u0007chuông"), "userName"),
        (new_user(userName="x" * 257), "userName"),
        (new_user(name={"formatted": "=HYPERLINK()"}, displayName=None), "name.formatted"),
        (new_user(emails=[{"value": "not an email"}]), "emails"),
        (
            new_user(
                phoneNumbers=[{"value": "1", "primary": True}, {"primary": "True", "value": "2"}]
            ),
            "phoneNumbers",
        ),
        (new_user(active="maybe"), "active"),
        (new_user(**{OFFICIAL: {"unitCode": "02656", "citizenId": "1" * 65}}), "citizenId"),
        (new_user(**{OFFICIAL: {"unitCode": "99999"}}), "unitCode"),
        (new_user(**{OFFICIAL: {"unitCode": "02656", "agency": "Bộ Quốc phòng"}}), "agency"),
    ]
    for body, attribute in cases:
        response = send(web, "POST", "/Users", ward_token, body)
        assert attribute in error_of(response, 400, "invalidValue"), attribute
    no_schema = send(web, "POST", "/Users", ward_token, {"userName": "x.y"})
    error_of(no_schema, 400, "invalidSyntax")
    with transaction(runtime.session_factory) as session:
        assert session.scalar(select(Account).where(Account.username == "vu.van.moi")) is None


def test_create_outside_reach_is_403(web, runtime, ward_token):
    body = new_user(**{OFFICIAL: {"unitCode": "02668"}})
    assert "02668" in error_of(send(web, "POST", "/Users", ward_token, body), 403)
    with transaction(runtime.session_factory) as session:
        assert session.scalar(select(Account).where(Account.username == "vu.van.moi")) is None


# --- PUT -------------------------------------------------------------------------------------


def test_put_replaces_clears_and_bumps_version(web, runtime, ward_token, directory, clock):
    subject = directory["subjects"]["nguyen.van.an"]
    before = get(web, f"/Users/{subject}", ward_token).json()
    body = {
        "schemas": [CORE],
        "userName": "An.Nguyen",
        "displayName": "Nguyễn Văn Ân",
        OFFICIAL: {"unitCode": "02656", "agency": "UBND Phường Cam Đường"},
    }
    response = send(web, "PUT", f"/Users/{subject}", ward_token, body, **{"If-Match": 'W/"3"'})
    assert response.status_code == 200, response.text
    user = response.json()
    assert user["userName"] == "an.nguyen" and user["displayName"] == "Nguyễn Văn Ân"
    assert "emails" not in user and "phoneNumbers" not in user and "externalId" not in user
    assert "citizenId" not in user[OFFICIAL] and "position" not in user[OFFICIAL]
    assert user["meta"]["version"] == response.headers["etag"] == 'W/"4"'
    assert user["meta"]["lastModified"] != before["meta"]["lastModified"]
    # The same representation again changes nothing: the version stays.
    again = send(web, "PUT", f"/Users/{subject}", ward_token, body)
    assert again.json()["meta"]["version"] == 'W/"4"'
    assert ("client:" in client_actor(runtime)) and (
        client_actor(runtime),
        "scim.user.replace",
    ) in audit_actions(runtime, "account:an.nguyen")


def test_put_with_a_stale_if_match_is_412_and_changes_nothing(web, ward_token, directory):
    subject = directory["subjects"]["nguyen.van.an"]
    body = get(web, f"/Users/{subject}", ward_token).json()
    body["externalId"] = "hr-changed"
    stale = send(web, "PUT", f"/Users/{subject}", ward_token, body, **{"If-Match": 'W/"2"'})
    error_of(stale, 412)
    assert get(web, f"/Users/{subject}", ward_token).json()["externalId"] == "hr-1"
    ok = send(web, "PUT", f"/Users/{subject}", ward_token, body, **{"If-Match": 'W/"3"'})
    assert ok.status_code == 200 and ok.json()["externalId"] == "hr-changed"


def test_put_username_and_citizen_id_conflicts_are_409(web, ward_token, directory):
    subject = directory["subjects"]["nguyen.van.an"]
    body = get(web, f"/Users/{subject}", ward_token).json()
    error_of(
        send(web, "PUT", f"/Users/{subject}", ward_token, {**body, "userName": "Tran.Thi.Binh"}),
        409,
        "uniqueness",
    )
    body[OFFICIAL]["citizenId"] = "015190000002"
    error_of(send(web, "PUT", f"/Users/{subject}", ward_token, body), 409, "uniqueness")


def test_put_moves_within_reach_and_refuses_outside(web, runtime, province_token, directory):
    subject = directory["subjects"]["nguyen.van.an"]
    body = get(web, f"/Users/{subject}", province_token).json()
    body[OFFICIAL] = {"unitCode": "03862", "agency": "peoples_committee"}
    assert "03862" in error_of(send(web, "PUT", f"/Users/{subject}", province_token, body), 403)
    body[OFFICIAL] = {"unitCode": "02668", "agency": "peoples_committee"}
    moved = send(web, "PUT", f"/Users/{subject}", province_token, body)
    assert moved.status_code == 200, moved.text
    assert moved.json()[OFFICIAL]["unitCode"] == "02668"
    with transaction(runtime.session_factory) as session:
        account = session.scalar(select(Account).where(Account.subject == subject))
        move = session.scalar(select(AccountMove).where(AccountMove.account_id == account.id))
        assert move.to_unit_id == directory["units"]["02668"]
        assert move.actor.startswith("client:")
    assert events(runtime, subject) == ["account.moved"]


def test_put_unknown_or_out_of_reach_user_is_404(web, ward_token, directory):
    for username in ("hoang.van.em", "pham.thi.dung", "da.xoa"):
        subject = directory["subjects"][username]
        response = send(web, "PUT", f"/Users/{subject}", ward_token, new_user())
        error_of(response, 404)
    error_of(send(web, "DELETE", "/Users/nope", ward_token), 404)


def test_put_active_false_disables_and_true_enables(web, runtime, ward_token, directory):
    subject = directory["subjects"]["nguyen.van.an"]
    body = get(web, f"/Users/{subject}", ward_token).json()
    off = send(web, "PUT", f"/Users/{subject}", ward_token, {**body, "active": False})
    assert off.json()["active"] is False
    assert get(web, f"/Users/{subject}", ward_token).status_code == 200  # stays visible
    on = send(web, "PUT", f"/Users/{subject}", ward_token, {**body, "active": True})
    assert on.json()["active"] is True
    assert events(runtime, subject) == ["account.disabled", "account.enabled"]


# --- DELETE ----------------------------------------------------------------------------------


def test_delete_is_a_soft_delete_invisible_to_scim(web, runtime, ward_token, directory):
    subject = directory["subjects"]["nguyen.van.an"]
    with transaction(runtime.session_factory) as session:
        account = session.scalar(select(Account).where(Account.subject == subject))
        sessions.create(
            session=session,
            clock=runtime.clock,
            settings=runtime.settings,
            account=account,
            amr=["pwd"],
            client_address=None,
            user_agent=None,
        )
    stale = send(web, "DELETE", f"/Users/{subject}", ward_token, **{"If-Match": 'W/"1"'})
    error_of(stale, 412)
    response = send(web, "DELETE", f"/Users/{subject}", ward_token)
    assert response.status_code == 204
    assert get(web, f"/Users/{subject}", ward_token).status_code == 404
    listed = get(web, "/Users?filter=userName%20eq%20%22nguyen.van.an%22", ward_token).json()
    assert listed["totalResults"] == 0
    error_of(send(web, "DELETE", f"/Users/{subject}", ward_token), 404)
    with transaction(runtime.session_factory) as session:
        account = session.scalar(select(Account).where(Account.subject == subject))
        profile = session.get(AccountProfile, account.id)
        assert account.status == "disabled" and profile.deleted_at is not None
        browser_sessions = session.scalars(
            select(BrowserSession).where(BrowserSession.account_id == account.id)
        ).all()
        assert browser_sessions and all(s.ended_at is not None for s in browser_sessions)
    actions = [action for _, action in audit_actions(runtime, "account:nguyen.van.an")]
    assert actions[-2:] == ["account.disable", "account.delete"]
    assert events(runtime, subject) == ["account.disabled", "account.deleted"]


# --- PATCH -----------------------------------------------------------------------------------


def patch(web, token, subject, *operations, **headers):
    body = {"schemas": [PATCH], "Operations": list(operations)}
    return send(web, "PATCH", f"/Users/{subject}", token, body, **headers)


def test_patch_simple_attributes(web, runtime, ward_token, directory):
    subject = directory["subjects"]["nguyen.van.an"]
    response = patch(
        web,
        ward_token,
        subject,
        {"op": "replace", "path": "displayName", "value": "Nguyễn Văn Bình"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "b@laocai.gov.vn"},
        {"op": "remove", "path": "phoneNumbers"},
        {"op": "add", "value": {"externalId": "hr-9", OFFICIAL: {"position": "Phó chủ tịch"}}},
        **{"If-Match": 'W/"3"'},
    )
    assert response.status_code == 200, response.text
    user = response.json()
    # displayName is its own attribute; the full name (name.formatted) stays.
    assert user["displayName"] == "Nguyễn Văn Bình"
    assert user["name"]["formatted"] == "Nguyễn Văn An"
    assert user["emails"][0]["value"] == "b@laocai.gov.vn" and "phoneNumbers" not in user
    assert user["externalId"] == "hr-9" and user[OFFICIAL]["position"] == "Phó chủ tịch"
    assert user["meta"]["version"] == 'W/"4"'
    assert (client_actor(runtime), "scim.user.patch") in audit_actions(
        runtime, "account:nguyen.van.an"
    )


def test_patch_active_disables_and_enables(web, runtime, ward_token, directory):
    subject = directory["subjects"]["nguyen.van.an"]
    off = patch(web, ward_token, subject, {"op": "replace", "path": "active", "value": "False"})
    assert off.json()["active"] is False
    assert get(web, f"/Users/{subject}", ward_token).json()["active"] is False
    on = patch(web, ward_token, subject, {"op": "replace", "value": {"active": True}})
    assert on.json()["active"] is True
    assert events(runtime, subject) == ["account.disabled", "account.enabled"]


def test_patch_is_atomic(web, ward_token, directory):
    subject = directory["subjects"]["nguyen.van.an"]
    response = patch(
        web,
        ward_token,
        subject,
        {"op": "replace", "path": "externalId", "value": "hr-new"},
        {"op": "replace", "path": "active", "value": False},
        {"op": "replace", "path": f"{OFFICIAL}:citizenId", "value": "1" * 65},
    )
    assert "citizenId" in error_of(response, 400, "invalidValue")
    user = get(web, f"/Users/{subject}", ward_token).json()
    assert user["externalId"] == "hr-1" and user["active"] is True
    assert user["meta"]["version"] == 'W/"3"'


def test_patch_errors(web, ward_token, directory):
    subject = directory["subjects"]["nguyen.van.an"]
    error_of(patch(web, ward_token, subject, {"op": "remove"}), 400, "noTarget")
    nothing = {"op": "replace", "path": 'emails[type eq "home"].value', "value": "x@y.vn"}
    error_of(patch(web, ward_token, subject, nothing), 400, "noTarget")
    error_of(
        patch(web, ward_token, subject, {"op": "replace", "path": "id", "value": "x"}),
        400,
        "mutability",
    )
    error_of(
        patch(web, ward_token, subject, {"op": "add", "path": "password", "value": "x"}),
        400,
        "invalidPath",
    )
    error_of(
        patch(web, ward_token, subject, {"op": "move", "path": "active"}), 400, "invalidSyntax"
    )
    stale = patch(
        web, ward_token, subject, {"op": "remove", "path": "externalId"}, **{"If-Match": 'W/"9"'}
    )
    error_of(stale, 412)
    assert get(web, f"/Users/{subject}", ward_token).json()["externalId"] == "hr-1"


def test_patch_move_outside_reach_is_403_and_inside_keeps_agency_kind(
    web, runtime, province_token, directory
):
    subject = directory["subjects"]["nguyen.van.an"]
    out = {"op": "replace", "path": f"{OFFICIAL}:unitCode", "value": "03862"}
    error_of(patch(web, province_token, subject, out), 403)
    inside = {"op": "replace", "path": f"{OFFICIAL}:unitCode", "value": "02668"}
    moved = patch(web, province_token, subject, inside)
    assert moved.status_code == 200, moved.text
    assert moved.json()[OFFICIAL]["agency"] == "UBND Xã Bát Xát"
    assert events(runtime, subject) == ["account.moved"]


def test_primary_false_is_shown_back_as_sent(web, ward_token):
    """RFC 7643 §2.4: primary is a boolean; false is a value, not an absence."""
    body = new_user(
        emails=[
            {"value": "moi.vv@laocai.gov.vn", "type": "work", "primary": True},
            {"value": "khac@laocai.gov.vn", "type": "home", "primary": False},
        ],
        ims=[{"value": "moi.vv", "type": "xmpp", "primary": "False"}],
    )
    created = send(web, "POST", "/Users", ward_token, body)
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["emails"][1] == {"value": "khac@laocai.gov.vn", "type": "home", "primary": False}
    assert user["ims"] == [{"value": "moi.vv", "type": "xmpp", "primary": False}]
    # Making another value primary sets "primary": false on the one that was (RFC 7644 §3.5.2).
    home = {"op": "replace", "path": 'emails[type eq "home"].primary', "value": True}
    patched = patch(web, ward_token, user["id"], home).json()
    assert [e.get("primary") for e in patched["emails"]] == [False, True]
    assert get(web, f"/Users/{user['id']}", ward_token).json()["emails"] == patched["emails"]


def test_patch_an_extension_object_carrying_its_schemas(web, ward_token, directory):
    """RFC 7644 §3.5.2: the path may be an extension's URN, designating its whole object;
    clients write that object with its own ``schemas`` member, which sets nothing."""
    subject = directory["subjects"]["nguyen.van.an"]
    enterprise = {"schemas": [read_side.ENTERPRISE], "department": "Phòng Tư pháp"}
    add = {"op": "add", "path": read_side.ENTERPRISE, "value": enterprise}
    added = patch(web, ward_token, subject, add)
    assert added.status_code == 200, added.text
    assert added.json()[read_side.ENTERPRISE] == {"department": "Phòng Tư pháp"}
    official = {
        "schemas": [OFFICIAL],
        "unitCode": "02656",
        "agency": "Đảng ủy",
        "position": "Bí thư",
    }
    replaced = patch(
        web, ward_token, subject, {"op": "replace", "path": OFFICIAL, "value": official}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()[OFFICIAL] == {
        "unitCode": "02656",
        "agency": "Đảng ủy",
        "position": "Bí thư",
    }
    # schemas naming anything else is still the readOnly attribute.
    other = {"op": "add", "path": OFFICIAL, "value": {"schemas": [CORE], "position": "x"}}
    assert "schemas" in error_of(patch(web, ward_token, subject, other), 400, "mutability")


def test_patch_remove_required_attributes_is_refused_optional_ones_removed(
    web, ward_token, directory
):
    """``active``, our extension and its ``unitCode`` are published required: a remove is 400
    mutability (RFC 7644 §3.5.2), not a silent return to the default. Optional ones go."""
    subject = directory["subjects"]["nguyen.van.an"]
    for path in ("active", OFFICIAL, f"{OFFICIAL}:unitCode"):
        error_of(patch(web, ward_token, subject, {"op": "remove", "path": path}), 400, "mutability")
    no_unit = {"op": "replace", "path": OFFICIAL, "value": {"position": "Chủ tịch"}}
    error_of(patch(web, ward_token, subject, no_unit), 400, "mutability")
    user = get(web, f"/Users/{subject}", ward_token).json()
    assert user["active"] is True and user["meta"]["version"] == 'W/"3"'
    for name in ("agency", "citizenId", "position"):
        removed = patch(web, ward_token, subject, {"op": "remove", "path": f"{OFFICIAL}:{name}"})
        assert removed.status_code == 200, removed.text
        assert name not in removed.json()[OFFICIAL]
    assert get(web, f"/Users/{subject}", ward_token).json()[OFFICIAL] == {"unitCode": "02656"}
