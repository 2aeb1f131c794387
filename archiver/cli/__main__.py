from archiver.cli import app

app()
