"""Masking of personal data for display. The stored values stay whole; what leaves the system through the
API, the pages, the admin lists or a log line goes through these functions unless the viewer's role needs
the whole value (see `selectors.can_see_personal_data`)."""


def mask_id_number(value: str) -> str:
    """`510106199001011234` → `5101**********1234`: keep the region prefix and the last four."""
    if not value:
        return ""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_phone(value: str) -> str:
    """`13812345678` → `138****5678`."""
    if not value:
        return ""
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_name(value: str) -> str:
    """`张三明` → `张*明`, `李四` → `李*`: for public boards and published letters."""
    if not value:
        return ""
    if len(value) == 1:
        return value
    if len(value) == 2:
        return value[0] + "*"
    return value[0] + "*" * (len(value) - 2) + value[-1]
