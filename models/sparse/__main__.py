"""Dense vs masked attention time on this machine for one pattern.

    python -m models.sparse strided l=32 part=union
"""
import argparse

from models.sparse.cost import measure_cost
from models.sparse.patterns import Pattern


def main() -> None:
    parser = argparse.ArgumentParser(description="Dense vs masked attention time on this machine.")
    parser.add_argument("kind", help="pattern kind, e.g. strided")
    parser.add_argument("params", nargs="*", help="name=value parameters, e.g. l=32 part=union")
    args = parser.parse_args()
    params = {k: int(v) if v.lstrip("-").isdigit() else v for k, v in (p.split("=", 1) for p in args.params)}
    pattern = Pattern(args.kind, params)
    print(f"{pattern.label}: 4 heads x 64 dims, one thread, fastest of at least 3 calls")
    print(f"{'n':>6} {'dense ms':>9} {'masked ms':>10} {'dense MB':>9} {'masked MB':>10} {'blocks':>7} "
          f"{'block-sparse ms':>16}")
    for p in measure_cost(pattern):
        print(f"{p.n:>6} {1e3 * p.dense_seconds:>9.1f} {1e3 * p.masked_seconds:>10.1f} {p.dense_bytes / 2**20:>9.1f} "
              f"{p.masked_bytes / 2**20:>10.1f} {p.block_share:>7.1%} {1e3 * p.block_sparse_seconds:>16.1f}")


if __name__ == "__main__":
    main()
