"""`charrnn info`: versions, ISA tier, GEMM path, bf16 and threads (thin over charrnn.info)."""
import click

from charrnn.cli.common import call


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead.")
def info(as_json):
    """Versions, ISA tier, GEMM path, bf16 and threads: what a bug report needs.

    \b
    Example:
      charrnn info
      CHARRNN_ISA=avx2 charrnn info     # what a forced tier would use
      CHARRNN_BF16=portable charrnn info   # bf16 on the portable kernel (tests)
    """
    from charrnn.inspect.system import format_info, info as info_fn
    d = call(info_fn)
    if as_json:
        import json
        click.echo(json.dumps(d, indent=2))
    else:
        click.echo(format_info(d))
