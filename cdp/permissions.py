from rest_framework.permissions import BasePermission

from cdp.auth import SourcePrincipal


class IsStaffUser(BasePermission):
    """A logged-in staff member (session or personal token). Source keys are refused."""

    message = "Staff credentials required."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(
            user and user.is_authenticated and not isinstance(user, SourcePrincipal) and user.is_staff
        )


class StaffOrSourceScope(BasePermission):
    """Staff, or a source key holding the view's ``required_scope`` (for the view's own source only;
    views check the source match themselves). When the view names a ``required_permission``
    (``profiles.view_profile``), staff need that Django permission too: their role gives it (cdp.roles)."""

    message = "This key lacks the scope, or this user the permission, this endpoint needs."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if isinstance(user, SourcePrincipal):
            return user.has_scope(view.required_scope)
        if not IsStaffUser().has_permission(request, view):
            return False
        permission = getattr(view, "required_permission", None)
        return permission is None or user.has_perm(permission)
