"""The lowbit command: demo, info, bench."""
from __future__ import annotations

import argparse
import sys


def _info(args) -> int:
    import lowbit

    info = lowbit.cpu_info()
    print(f"lowbit {lowbit.__version__}")
    print(f"arch:      {info['arch']}")
    print(f"features:  {' '.join(info['features']) or '-'}")
    print(f"isa:       {info['isa']}  (supported: {', '.join(info['supported_isas'])})")
    print(f"threads:   {info['threads']}")
    return 0


def _demo(args) -> int:
    from .demo import run_demo

    return run_demo(quick=args.quick)


def _bench(args) -> int:
    from .bench import run

    return run(args.which, threads=args.threads, repeat=args.repeat, quick=args.quick)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="lowbit", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("info", help="version, CPU features and the kernel set in use")
    s.set_defaults(fn=_info)
    s = sub.add_parser("demo", help="the end-to-end job on scikit-learn's digits")
    s.add_argument("--quick", action="store_true", help="fewer epochs (for tests)")
    s.set_defaults(fn=_demo)
    s = sub.add_parser("bench", help="kernel benchmarks against the installed peers, as ratios")
    s.add_argument("which", nargs="*", default=["quant", "gemm"],
                   help="which benchmarks: quant, gemm (default: all)")
    s.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    s.add_argument("--repeat", type=int, default=7, help="timed repetitions (median is reported)")
    s.add_argument("--quick", action="store_true", help="small shapes only")
    s.set_defaults(fn=_bench)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
