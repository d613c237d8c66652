"""Every yes-or-no query parameter of the API's lists, found in the schema: true, false, 1 and 0 (in any case)
are read, anything else is a 400 that says so — never a filter silently left out, which would answer every row
as if `?overdue=ture` had not been asked."""

import pytest
from drf_spectacular.generators import SchemaGenerator


def boolean_parameters() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (path, parameter["name"])
        for path, item in schema["paths"].items()
        if "{" not in path and "get" in item
        for parameter in item["get"].get("parameters", [])
        if parameter["in"] == "query" and parameter.get("schema", {}).get("type") == "boolean"
    )


BOOLEAN_PARAMETERS = boolean_parameters()


def test_the_schema_names_the_yes_or_no_filters():
    found = set(BOOLEAN_PARAMETERS)
    assert {("/api/v1/cases/", "open"), ("/api/v1/letters/", "overdue"), ("/api/v1/departments/", "is_active")} <= found
    assert ("/api/v1/case-categories/", "active") in found  # a filter set made of `filterset_fields`


@pytest.mark.parametrize(("path", "name"), BOOLEAN_PARAMETERS)
def test_a_yes_or_no_parameter_reads_four_words_and_refuses_the_rest(path, name, api, admin_user):
    client = api(admin_user)
    assert client.get(path).status_code == 200
    for word in ("true", "false", "1", "0", "TRUE", "False"):
        assert client.get(path, {name: word}).status_code == 200, word
    refused = client.get(path, {name: "perhaps"})
    assert refused.status_code == 400, refused.content
    assert "true" in refused.json()["detail"]
