"""Schema fuzzing: schemathesis against the served OpenAPI document of the real app."""
