"""SCIM 2.0 Groups (RFC 7643 §4.2, RFC 7644 §3): create, read, filter, PUT, PATCH (members by
value filter, atomic), DELETE with audit, ETags, unit scoping, and Users' readOnly ``groups``,
through real HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import func, select

from core.audit import AuditEntry
from core.db import transaction
from idp.models import Group, GroupMember
from tests.idp import test_scim as read_side
from tests.idp.test_scim import get
from tests.idp.test_scim_writes import error_of, send

directory = read_side.directory
province_token = read_side.province_token
ward_token = read_side.ward_token

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
OFFICIAL_GROUP = "urn:commune-sso:scim:schemas:extension:official:1.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def new_group(directory, name="Tổ công tác số", *usernames, unit=None, **extra):
    body = {
        "schemas": [GROUP],
        "displayName": name,
        "members": [{"value": directory["subjects"][u]} for u in usernames],
        **extra,
    }
    if unit:
        body[OFFICIAL_GROUP] = {"unitCode": unit}
    return body


def create(web, token, body):
    response = send(web, "POST", "/Groups", token, body)
    assert response.status_code == 201, response.text
    return response.json()


def patch(web, token, group_id, *operations, **headers):
    body = {"schemas": [PATCH], "Operations": list(operations)}
    return send(web, "PATCH", f"/Groups/{group_id}", token, body, **headers)


def member_names(group):
    return sorted(member["display"] for member in group.get("members", []))


def test_create_read_and_users_groups_attribute(web, ward_token, directory):
    group = create(
        web, ward_token, new_group(directory, "Tổ công tác", "nguyen.van.an", "tran.thi.binh")
    )
    assert group["schemas"] == [GROUP, OFFICIAL_GROUP]
    assert group["displayName"] == "Tổ công tác"
    # A client reaching a single ward creates groups of that ward without saying so.
    assert group[OFFICIAL_GROUP] == {"unitCode": "02656"}  # provinceCode: on request
    assert group["meta"]["version"] == 'W/"1"' and group["meta"]["resourceType"] == "Group"
    an = directory["subjects"]["nguyen.van.an"]
    base = group["meta"]["location"].rsplit("/Groups/", 1)[0]
    assert {
        "value": an,
        "$ref": f"{base}/Users/{an}",
        "type": "User",
        "display": "Nguyễn Văn An",
    } in group["members"]
    fetched = get(web, f"/Groups/{group['id']}", ward_token)
    assert fetched.status_code == 200 and fetched.json() == group
    assert fetched.headers["etag"] == 'W/"1"'
    user = get(web, f"/Users/{an}", ward_token).json()
    assert user["groups"] == [
        {
            "value": group["id"],
            "$ref": group["meta"]["location"],
            "display": "Tổ công tác",
            "type": "direct",
        }
    ]
    expression = quote('userName eq "tran.thi.binh"')
    listed = get(web, f"/Users?filter={expression}", ward_token)
    assert listed.json()["Resources"][0]["groups"][0]["value"] == group["id"]


def test_filters(web, province_token, directory, clock):
    t = province_token
    first = create(
        web, t, new_group(directory, "Ban Tư pháp", "nguyen.van.an", unit="02656", externalId="g-1")
    )
    second = create(web, t, new_group(directory, "Ban Văn hoá", "pham.thi.dung", unit="02668"))

    def found(expression):
        response = get(web, f"/Groups?filter={quote(expression)}", t)
        assert response.status_code == 200, response.text
        return {group["displayName"] for group in response.json()["Resources"]}

    assert found('displayName eq "ban tu phap"') == {"Ban Tư pháp"}
    assert found('displayName co "VĂN"') == {"Ban Văn hoá"}
    assert found('displayName sw "ban"') == {"Ban Tư pháp", "Ban Văn hoá"}
    an = directory["subjects"]["nguyen.van.an"]
    assert found(f'members.value eq "{an}"') == {"Ban Tư pháp"}
    assert found(f'members[value eq "{an}"]') == {"Ban Tư pháp"}
    assert found(f'not (members[value eq "{an}"])') == {"Ban Văn hoá"}
    assert found('members[display co "dung"]') == {"Ban Văn hoá"}
    assert found('externalId eq "g-1"') == {"Ban Tư pháp"}
    assert found('unitCode eq "02668"') == {"Ban Văn hoá"}
    later = clock.now().isoformat().replace("+00:00", "Z")
    assert found(f'meta.lastModified lt "{later}"') == set()
    assert found(f'meta.lastModified ge "{later}" and displayName sw "ban"') == {
        "Ban Tư pháp",
        "Ban Văn hoá",
    }
    assert found(f'meta.created gt "{later}"') == set()
    bad = get(web, "/Groups?filter=" + quote('userName eq "x"'), t)
    assert "userName" in error_of(bad, 400, "invalidFilter")
    bad = get(web, "/Groups?filter=" + quote('members[nickName eq "x"]'), t)
    assert "members[nickName]" in error_of(bad, 400, "invalidFilter")
    ordered = get(web, "/Groups?sortBy=displayName&sortOrder=descending&count=1", t).json()
    assert ordered["totalResults"] == 2 and ordered["Resources"][0]["id"] == second["id"]
    assert first["id"] != second["id"]
    slim = get(web, "/Groups?excludedAttributes=members", t).json()["Resources"]
    assert all("members" not in group for group in slim)


def test_unit_scope_isolation(web, runtime, ward_token, province_token, directory):
    # The province client makes a group of the other ward (02668): invisible to the ward client.
    other = create(
        web, province_token, new_group(directory, "Xã khác", "pham.thi.dung", unit="02668")
    )
    assert error_of(get(web, f"/Groups/{other['id']}", ward_token), 404) == "No such group."
    assert get(web, "/Groups", ward_token).json()["totalResults"] == 0
    error_of(send(web, "DELETE", f"/Groups/{other['id']}", ward_token), 404)
    # The ward client cannot create a group in another unit, nor add outsiders.
    error_of(send(web, "POST", "/Groups", ward_token, new_group(directory, "X", unit="02668")), 403)
    for outsider in ("pham.thi.dung", "hoang.van.em", "da.xoa"):
        detail = error_of(
            send(web, "POST", "/Groups", ward_token, new_group(directory, "X", outsider)),
            400,
            "invalidValue",
        )
        assert "members" in detail
    unknown = {"schemas": [GROUP], "displayName": "X", "members": [{"value": "nope"}]}
    error_of(send(web, "POST", "/Groups", ward_token, unknown), 400, "invalidValue")
    nested = {
        "schemas": [GROUP],
        "displayName": "X",
        "members": [{"value": other["id"], "type": "Group"}],
    }
    error_of(send(web, "POST", "/Groups", ward_token, nested), 400, "invalidValue")
    # A client with one unit row (here a province) gets groups of that unit by default; a
    # province group is out of a ward client's reach.
    province_group = create(web, province_token, new_group(directory, "Y", "pham.thi.dung"))
    assert province_group[OFFICIAL_GROUP]["unitCode"] == "15"
    error_of(get(web, f"/Groups/{province_group['id']}", ward_token), 404)
    two_wards = read_side.provisioning_token(
        web, runtime, [directory["units"]["02656"], directory["units"]["02668"]]
    )
    no_unit = send(web, "POST", "/Groups", two_wards, new_group(directory, "Z"))
    assert "unitCode" in error_of(no_unit, 400, "invalidValue")
    with transaction(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(Group)) == 2


def test_put_replaces_members_and_if_match(web, ward_token, directory):
    group = create(web, ward_token, new_group(directory, "Nhóm", "nguyen.van.an"))
    path = f"/Groups/{group['id']}"
    body = new_group(directory, "Nhóm mới", "tran.thi.binh", "le.van.cuong")
    stale = send(web, "PUT", path, ward_token, body, **{"If-Match": 'W/"7"'})
    error_of(stale, 412)
    replaced = send(web, "PUT", path, ward_token, body, **{"If-Match": 'W/"1"'})
    assert replaced.status_code == 200, replaced.text
    assert replaced.headers["etag"] == 'W/"2"'
    assert member_names(replaced.json()) == ["Lê Văn Cường", "Trần Thị Bình"]
    moved = dict(body, **{OFFICIAL_GROUP: {"unitCode": "02668"}})
    error_of(send(web, "PUT", path, ward_token, moved), 400, "mutability")
    same = send(web, "PUT", path, ward_token, body)
    assert same.json()["meta"]["version"] == 'W/"2"'  # nothing changed, no new version
    twin = send(web, "POST", "/Groups", ward_token, new_group(directory, "NHÓM MỚI"))
    error_of(twin, 409, "uniqueness")


def test_patch_members_and_value_filters(web, runtime, ward_token, directory):
    s = directory["subjects"]
    group = create(web, ward_token, new_group(directory, "Nhóm", "nguyen.van.an"))
    gid = group["id"]
    added = patch(
        web,
        ward_token,
        gid,
        {"op": "add", "path": "members", "value": [{"value": s["tran.thi.binh"]}]},
        {"op": "Add", "value": {"members": [{"value": s["le.van.cuong"]}]}},
        {"op": "replace", "path": "displayName", "value": "Nhóm A"},
    )
    assert added.status_code == 200, added.text
    assert added.json()["displayName"] == "Nhóm A"
    assert member_names(added.json()) == ["Lê Văn Cường", "Nguyễn Văn An", "Trần Thị Bình"]
    removed = patch(
        web, ward_token, gid, {"op": "remove", "path": f'members[value eq "{s["nguyen.van.an"]}"]'}
    )
    assert member_names(removed.json()) == ["Lê Văn Cường", "Trần Thị Bình"]
    azure = patch(
        web,
        ward_token,
        gid,
        {"op": "Remove", "path": "members", "value": [{"value": s["le.van.cuong"]}]},
    )
    assert member_names(azure.json()) == ["Trần Thị Bình"]
    nothing = patch(web, ward_token, gid, {"op": "remove", "path": 'members[value eq "nope"]'})
    error_of(nothing, 400, "noTarget")
    error_of(
        patch(web, ward_token, gid, {"op": "remove", "path": "displayName"}), 400, "invalidValue"
    )
    error_of(
        patch(web, ward_token, gid, {"op": "replace", "path": "id", "value": "x"}),
        400,
        "mutability",
    )
    # Atomic: the first operation is valid, the second adds an outsider; nothing changes.
    atomic = patch(
        web,
        ward_token,
        gid,
        {"op": "replace", "path": "displayName", "value": "Đổi tên"},
        {"op": "add", "path": "members", "value": [{"value": s["hoang.van.em"]}]},
    )
    error_of(atomic, 400, "invalidValue")
    after = get(web, f"/Groups/{gid}", ward_token).json()
    assert after["displayName"] == "Nhóm A" and member_names(after) == ["Trần Thị Bình"]
    assert after["meta"]["version"] == 'W/"4"'
    error_of(
        patch(web, ward_token, gid, {"op": "remove", "path": "members"}, **{"If-Match": 'W/"1"'}),
        412,
    )
    cleared = patch(web, ward_token, gid, {"op": "remove", "path": "members"})
    assert "members" not in cleared.json()


def test_delete_really_deletes_and_is_audited(web, runtime, ward_token, directory):
    group = create(web, ward_token, new_group(directory, "Tạm", "nguyen.van.an", "tran.thi.binh"))
    path = f"/Groups/{group['id']}"
    error_of(send(web, "DELETE", path, ward_token, **{"If-Match": 'W/"5"'}), 412)
    response = send(web, "DELETE", path, ward_token)
    assert response.status_code == 204
    error_of(get(web, path, ward_token), 404)
    an = directory["subjects"]["nguyen.van.an"]
    assert "groups" not in get(web, f"/Users/{an}", ward_token).json()
    with transaction(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(GroupMember)) == 0
        entries = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.target == f"group:{group['id']}")
            .order_by(AuditEntry.seq)
        ).all()
    assert [e.action for e in entries] == ["scim.group.create", "scim.group.delete"]
    assert entries[1].actor.startswith("client:")
    assert '"members":2' in entries[1].details and '"unit":"02656"' in entries[1].details


def test_groups_out_of_reach_are_not_shown_on_members(web, province_token, ward_token, directory):
    """An official of the ward is in a province-wide group: the province client sees it in the
    official's groups (listing and retrieval), the ward client in neither."""
    group = create(
        web, province_token, new_group(directory, "Ban chỉ đạo tỉnh", "nguyen.van.an", unit="15")
    )
    an = directory["subjects"]["nguyen.van.an"]

    def groups_seen(token):
        listed = get(web, "/Users?count=100", token).json()["Resources"]
        in_listing = next(user for user in listed if user["id"] == an).get("groups", [])
        retrieved = get(web, f"/Users/{an}", token).json().get("groups", [])
        return [g["value"] for g in in_listing], [g["value"] for g in retrieved]

    assert groups_seen(province_token) == ([group["id"]], [group["id"]])
    assert groups_seen(ward_token) == ([], [])


def test_patch_the_group_extension_object(web, ward_token, directory):
    """RFC 7644 §3.5.2: a path naming our Group extension designates its object. unitCode is
    immutable and required: the same unit is accepted, another one or a removal is 400."""
    group = create(web, ward_token, new_group(directory, "Tổ mở rộng"))
    same = {"schemas": [OFFICIAL_GROUP], "unitCode": "02656"}
    for op in ("add", "replace"):
        response = patch(
            web, ward_token, group["id"], {"op": op, "path": OFFICIAL_GROUP, "value": same}
        )
        assert response.status_code == 200, response.text
        assert response.json()[OFFICIAL_GROUP] == {"unitCode": "02656"}
    other = {"op": "replace", "path": OFFICIAL_GROUP, "value": {"unitCode": "02668"}}
    error_of(patch(web, ward_token, group["id"], other), 400, "mutability")
    removal = {"op": "remove", "path": OFFICIAL_GROUP}
    error_of(patch(web, ward_token, group["id"], removal), 400, "mutability")
    fetched = get(web, f"/Groups/{group['id']}", ward_token).json()
    assert fetched["meta"]["version"] == group["meta"]["version"]
    asked = get(web, f"/Groups/{group['id']}?attributes={OFFICIAL_GROUP}:provinceCode", ward_token)
    assert asked.json()[OFFICIAL_GROUP] == {"provinceCode": "15"}


def test_member_display_is_the_name_and_read_only(web, ward_token, directory):
    """members.display is published readOnly: the official's name, whatever the client sent."""
    an = directory["subjects"]["nguyen.van.an"]
    body = new_group(directory, "Tổ hiển thị")
    body["members"] = [{"value": an, "display": "Tên khác"}]
    group = create(web, ward_token, body)
    assert [m["display"] for m in group["members"]] == ["Nguyễn Văn An"]
    schema = get(web, "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group").json()
    members = next(a for a in schema["attributes"] if a["name"] == "members")
    display = next(s for s in members["subAttributes"] if s["name"] == "display")
    assert display["mutability"] == "readOnly"
