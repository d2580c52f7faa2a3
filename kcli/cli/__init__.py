"""kcli's command line: Typer commands over the client layer; no storage logic here."""
