//! Whether GitLab could mask a value.
