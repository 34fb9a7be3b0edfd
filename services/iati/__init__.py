"""Speak IATI: the ledger's activities as IATI activity XML 2.03, and IATI files into intake.

- :mod:`services.iati.mapping`: an activity's state -> the data of one ``iati-activity`` (pure);
- :mod:`services.iati.writer`: that data -> XML, streamed with ``lxml.etree.xmlfile``;
- :mod:`services.iati.schema`, :mod:`services.iati.codelists`, :mod:`services.iati.rules`:
  the 2.03 schema, the codelists and the standard ruleset, from files vendored in ``data/``;
- :mod:`services.iati.validate`: every check on one activity, and on a whole file;
- :mod:`services.iati.source`: the projection's activities, as the query layer reads them;
- :mod:`services.iati.export`: the export itself (checked before anything is written);
- :mod:`services.iati.importer`: an IATI file -> reports through intake.

``docs/iati.md`` is the manual. The files in ``data/`` are the IATI Standard's (CC BY 4.0,
see ``data/SOURCES.md``).
"""
