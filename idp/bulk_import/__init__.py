"""Bulk import of officials from CSV or XLSX (issue 3, "Bulk import").

- :mod:`idp.bulk_import.reading` turns a file into rows (encoding, size and header checks);
- :mod:`idp.bulk_import.plan` validates each row and compares it with the database, keyed on
  the citizen ID (the dry run);
- :mod:`idp.bulk_import.apply` writes the plan in batches, one transaction per batch;
- :mod:`idp.bulk_import.activation` writes the one-time activation codes, one CSV per unit.
"""
