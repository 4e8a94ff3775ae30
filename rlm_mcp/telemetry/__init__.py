"""What the server tells its operators: logs on stderr, OpenTelemetry spans, and where the spans go."""
