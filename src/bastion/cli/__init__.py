"""Command-line interface (Typer): thin doors onto the library."""

__all__: list[str] = []
