from tokenhouse.cli import app

app()
