"""Domain errors raised by services. The API turns them into responses with a readable message (see
`api_base.exception_handler`); the pages show the message. Messages are translatable strings."""

from django.utils.translation import gettext_lazy as _


class DomainError(Exception):
    """An action the current state does not allow (HTTP 409)."""

    status_code = 409
    default_message = _("当前状态不允许此操作。")

    def __init__(self, message=None, *, code="conflict"):
        self.message = message or self.default_message
        self.code = code
        super().__init__(str(self.message))


class NotAllowed(DomainError):
    """The object is visible to the user, but their role may not do this (HTTP 403)."""

    status_code = 403
    default_message = _("您的角色无权执行此操作。")

    def __init__(self, message=None, *, code="permission_denied"):
        super().__init__(message, code=code)


class InvalidInput(DomainError):
    """Input that fails a business rule, tied to a field where there is one (HTTP 400)."""

    status_code = 400
    default_message = _("输入有误。")

    def __init__(self, message=None, *, field=None, code="invalid"):
        self.field = field
        super().__init__(message, code=code)


class RateLimited(DomainError):
    """Too many of something in too short a time (HTTP 429), e.g. a resident's letters of one day."""

    status_code = 429
    default_message = _("操作过于频繁，请稍后再试。")

    def __init__(self, message=None, *, code="rate_limited"):
        super().__init__(message, code=code)
