"""`python -m charrnn.cli` (mpiexec starts ranks so): the `charrnn` command."""
from charrnn.cli import main

main(prog_name="charrnn")
