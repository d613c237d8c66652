from .navigation import items_for
from .selectors import notifications_visible_to, scope_of
from .services import ELDER_COOKIE


def navigation(request):
    """The navigation the user may use, the unread count for the bell (one query), and whether the page is shown
    in the elder-friendly mode (the account's choice once logged in, the cookie's before)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "elder_mode": request.COOKIES.get(ELDER_COOKIE) == "1"}
    return {
        "nav_items": items_for(scope_of(user), request.path),
        "unread_notifications": notifications_visible_to(user).filter(read_at=None).count(),
        "elder_mode": user.elder_mode,
    }
