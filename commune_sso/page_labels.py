"""The code labels every page renderer gets: core's, idp's, ca_admin's and the composition
root's own audit actions (core.web.code_labels).

Merged here because idp and ca_admin never import each other, yet the audit page lists every
package's actions and actors.
"""

from __future__ import annotations

from ca_admin import labels as ca_labels
from core.web.code_labels import CORE_LABELS, CodeLabels, merge_labels
from core.web.i18n import N_
from idp import labels as idp_labels

# Actions only the composition root writes (the CLI, backup restore).
AUDIT_ACTIONS = {
    "key.rotate": N_("Token signing key rotated"),
    "backup.restored": N_("Backup restored"),
}


def page_labels() -> CodeLabels:
    return merge_labels(
        CORE_LABELS, idp_labels.LABELS, ca_labels.LABELS, {"audit_action": AUDIT_ACTIONS}
    )
