"""Target Audience Manager: segment documents, their validation, templates and the rules compiler.

`rules` turns a Firestore `segments/{id}` document into a validated `Segment` (or field-path
errors), `compiler` turns a `Segment` into one parameterized BigQuery statement over
`refined.profiles`, `templates` holds the four starting points marketers pick from, `events`
decodes Firestore trigger CloudEvents and `files` reads segment documents kept as YAML files. The
services that use them live in shared/services/segments.py; `scripts/segments` is cli/segments.py.
See docs/segments.md.
"""
