from .navigation import items_for
from .selectors import notifications_visible_to, scope_of


def navigation(request):
    """The navigation the user may use, and the unread count for the bell (one query)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    return {
        "nav_items": items_for(scope_of(user), request.path),
        "unread_notifications": notifications_visible_to(user).filter(read_at=None).count(),
    }
