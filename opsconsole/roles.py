"""Groups of DESIGN.md §7 and the permission classes that check them."""
from rest_framework.permissions import SAFE_METHODS, BasePermission

OPERATIONS_TEAM = "Operations Team"
OPERATIONS_LEAD = "Operations Lead"
ON_CALL_ENGINEER = "On-call Engineer"
SENIOR_ENGINEER = "Senior Engineer"
ENGINEERING_MANAGER = "Engineering Manager"
DIRECTOR = "Director"
VP_CTO = "VP/CTO"
CAB_MEMBER = "CAB member"
VIEWER = "Viewer"
# Service accounts of systems that push records (http_push sources); they may do nothing else.
INGEST_CLIENT = "Ingest Client"

ALL_GROUPS = [
    OPERATIONS_TEAM, OPERATIONS_LEAD, ON_CALL_ENGINEER, SENIOR_ENGINEER, ENGINEERING_MANAGER,
    DIRECTOR, VP_CTO, CAB_MEMBER, VIEWER, INGEST_CLIENT,
]
# Who may operate the pipeline (reload, replay, purge, reset, pause, ...).
OPERATOR_GROUPS = {
    OPERATIONS_TEAM, OPERATIONS_LEAD, ON_CALL_ENGINEER, SENIOR_ENGINEER, ENGINEERING_MANAGER, DIRECTOR, VP_CTO,
}
# Who may read the console and the API.
READER_GROUPS = OPERATOR_GROUPS | {CAB_MEMBER, VIEWER}
PUSH_GROUPS = OPERATOR_GROUPS | {INGEST_CLIENT}


def user_groups(user) -> set[str]:
    if not user or not user.is_authenticated:
        return set()
    cached = getattr(user, "_opsconsole_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._opsconsole_groups = cached
    return cached


def has_any_role(user, groups: set[str]) -> bool:
    if not user or not user.is_authenticated:
        return False
    return bool(user.is_superuser or user_groups(user) & groups)


def is_operator(user) -> bool:
    return has_any_role(user, OPERATOR_GROUPS)


def is_reader(user) -> bool:
    return has_any_role(user, READER_GROUPS)


class IsViewerOrOperator(BasePermission):
    """Readers may read; only operators may change anything."""

    message = "Your role does not allow this action."

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return is_reader(request.user)
        return is_operator(request.user)


class IsOperator(BasePermission):
    message = "This action needs an operator role (Operations Team or above)."

    def has_permission(self, request, view) -> bool:
        return is_operator(request.user)


class CanPushRecords(BasePermission):
    message = "This account may not push records (needs Ingest Client or an operator role)."

    def has_permission(self, request, view) -> bool:
        return has_any_role(request.user, PUSH_GROUPS)
