"""OpenAPI schema post-processing: the errors every operation can answer with.

Each view documents its success responses (and, where it helps, a specific error description);
this hook adds the rest once, generically, in the platform's single JSON error shape, so the schema
matches what the API returns (Schemathesis' status-code conformance check holds it to that).
"""

from __future__ import annotations

ERROR_COMPONENT = "Error"
ERROR_SCHEMA = {
    "type": "object",
    "description": "The platform's one error shape.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "Stable code clients can switch on."},
                "message": {"type": "string", "description": "For humans."},
                "fields": {
                    "type": "object",
                    "additionalProperties": {},
                    "description": "Per-field problems, when the input was invalid.",
                },
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}

#: What any operation may answer: the edge refuses bad input (400), authentication and
#: permissions (401/403), objects are tenant-scoped (404, also for another tenant's), content
#: negotiation (406) and the per-tenant quota (429).
ALWAYS = {
    "400": "Invalid input; `error.code` says what (and `error.fields` where).",
    "401": "Missing, unknown or revoked credentials.",
    "403": "The API key lacks the scope, or the user the role.",
    "404": "Not found (also for another tenant's objects).",
    "406": "No acceptable response content type.",
    "429": "Over quota; retry after `Retry-After` seconds.",
}
WITH_BODY = {
    "413": "The request body or upload is too large.",
    "415": "Unsupported request media type.",
}
WRITES = {
    "409": "The object's state does not allow this (e.g. a need that is not served).",
}


def document_error_responses(result, generator, request, public):
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_COMPONENT] = ERROR_SCHEMA
    ref = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            wanted = dict(ALWAYS)
            if "requestBody" in operation or method in {"post", "put", "patch"}:
                wanted |= WITH_BODY
            if method != "get":
                wanted |= WRITES
            responses = operation["responses"]
            for code, description in wanted.items():
                responses.setdefault(
                    code,
                    {"content": {"application/json": {"schema": ref}}, "description": description},
                )
    return result
