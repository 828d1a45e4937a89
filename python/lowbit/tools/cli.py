"""The lowbit command: demo, info, bench, quantize, report."""
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
    try:
        from lowbit_bench import run
    except ImportError:
        print("lowbit bench: the benchmarks are not in the lowbit wheel; install them from a "
              "checkout of lowbit with: pip install ./bench  (add ./bench[peers] for ONNX Runtime, "
              "torch, scikit-learn and faiss)", file=sys.stderr)
        return 2
    return run(args.which, threads=args.threads, repeat=args.repeat, quick=args.quick)


_ACTIVATIONS = ["relu", "gelu", "gelu_tanh", "none"]
_ACTIVATION_HELP = ("activation between the Linear layers of an .npz / .safetensors file "
                    "(default: the file's metadata; lowbit does not guess)")


def _activation(args) -> dict:
    """load_model's activation= from --activation (absent: the file's metadata, else an error)."""
    if args.activation is None:
        return {}
    return {"activation": None if args.activation == "none" else args.activation}


def _quantize(args) -> int:
    from .commands import cli_quantize

    return cli_quantize(args.model, args.calib, method=args.method, out=args.output, bits=args.bits,
                        per_channel=not args.per_tensor, **_activation(args))


def _report(args) -> int:
    from .commands import cli_report

    return cli_report(args.model, args.calib, labels_path=args.labels, method=args.method,
                      bits=args.bits, png=args.png, **_activation(args))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="lowbit", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("info", help="version, CPU features and the kernel set in use")
    s.set_defaults(fn=_info)
    s = sub.add_parser("demo", help="the end-to-end job on scikit-learn's digits")
    s.add_argument("--quick", action="store_true", help="fewer epochs (for tests)")
    s.set_defaults(fn=_demo)
    s = sub.add_parser("bench", help="kernel benchmarks against the installed peers, as ratios")
    s.add_argument("which", nargs="*", default=[],
                   help="which benchmarks: quant, peak, gemm, kmeans, train, nonlinear, memory, fourbit, dask, models "
                        "(default: all available)")
    s.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    s.add_argument("--repeat", type=int, default=7, help="timed repetitions (median is reported)")
    s.add_argument("--quick", action="store_true", help="small shapes only")
    s.set_defaults(fn=_bench)
    methods = ["minmax", "percentile", "mse", "entropy"]
    s = sub.add_parser("quantize", help="int8 post-training quantization of a model file")
    s.add_argument("model", help="model file: .npz, .safetensors or lowbit file")
    s.add_argument("--calib", required=True, help="calibration inputs, a .npy (samples, features)")
    s.add_argument("--method", default="minmax", choices=methods, help="activation range calibration")
    s.add_argument("--bits", type=int, default=8, help="weight bits, 2..8 (default 8)")
    s.add_argument("--per-tensor", action="store_true", help="one weight scale per layer")
    s.add_argument("-o", "--output", help="output lowbit file (default MODEL.int8.lowbit)")
    s.add_argument("--activation", choices=_ACTIVATIONS, help=_ACTIVATION_HELP)
    s.set_defaults(fn=_quantize)
    s = sub.add_parser("report", help="per-layer SQNR, size, latency and sensitivity of a model")
    s.add_argument("model", help="model file: .npz, .safetensors or lowbit file")
    s.add_argument("--calib", required=True, help="calibration inputs, a .npy (samples, features)")
    s.add_argument("--labels", help="labels .npy for accuracy (default: agreement with float)")
    s.add_argument("--method", default="minmax", choices=methods, help="activation range calibration")
    s.add_argument("--bits", type=int, default=8, help="weight bits, 2..8 (default 8)")
    s.add_argument("--png", help="plot file (default MODEL.report.png; needs matplotlib)")
    s.add_argument("--activation", choices=_ACTIVATIONS, help=_ACTIVATION_HELP)
    s.set_defaults(fn=_report)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
