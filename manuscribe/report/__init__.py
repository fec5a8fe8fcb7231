"""The review report: static HTML to check a run by looking (see docs/formats.md, `html`).

`build.document_files` / `build.finish_report` write it one page at a time into any storage;
`folder.build_report` builds it over an existing output folder (`manuscribe report DIR`).
"""
