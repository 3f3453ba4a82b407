"""Other tools' formats and protocols: the TAXII 2.1 server and the detection exports."""

__all__: list[str] = []
