"""Read source files into canonical records, one module per kind of input (tabular, events, EDI).

- `tabular.read_tabular`: ERP extracts, store counts and availability feeds (CSV / Parquet /
  JSON Lines) through a column mapping, to positions;
- `events.read_events`: stock events, one JSON object per line, to movements (the stream
  decodes and canonicalizes with the same `decode_event_texts` / `canonical_events_frame`);
- `edi.read_edi` (streaming) / `edi.canonical_from_edi`: the records `transforms.edi` parses
  from an X12 / EDIFACT file, to positions, in-transit and movements.

Every reader takes a `common.SourceSpec` and yields `common.FileResult`s, and conserves its
count of records: `read == written + quarantined` for each file. One bad value rejects its
record, never its file. A file that cannot be read at all gives one `unreadable_file` row per
record it holds where that can be known (a CSV's lines, a Parquet file's rows), else one row
naming the file; a failure nobody foresaw costs its batch as one `reader_error` row per record
(`common.guarded`). Nothing raises out of a reader for bad data. The checks of quantities and
timestamps all readers share are in `checks`.

Limits on a file's shape are module constants: MAX_COLUMNS, MAX_LINE_BYTES (`transforms.textfiles`),
`transforms.edi.values.MAX_SEGMENTS_PER_TRANSACTION`, `transforms.quarantine.RAW_MAX_BYTES`,
`transforms.canonical.MAX_EACHES` and its TIMESTAMP_MIN .. TIMESTAMP_MAX range.
"""
