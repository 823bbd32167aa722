"""Command line: parses arguments and delegates; no logic of its own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

EXIT_USAGE = 2


def _tune_allocator() -> None:
    """Keep freed activation buffers in the heap instead of returning them to the OS.

    glibc hands large blocks back with munmap on free, so every training step would
    page-fault its ~15 MB activations in again (about 10% of CPU step time).
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def cmd_sweep(args: argparse.Namespace) -> None:
    from grokcast.config import SweepConfig
    from grokcast.sweep import run_sweep

    _tune_allocator()
    config = SweepConfig.from_file(args.config)
    if args.steps is not None:
        config = SweepConfig.from_dict({**config.to_dict(), "n_steps": args.steps})
    result = run_sweep(config, args.out, device=args.device, chunk_size=args.chunk_size,
                       progress=not args.quiet)
    print(f"trained {result.n_trained} runs ({result.n_skipped} already finished) "
          f"in {result.seconds:.1f} s -> {args.out}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected an integer >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grokcast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sweep", help="train a sweep of runs into a sweep directory (resumable)")
    p.add_argument("--config", required=True, type=Path, help="sweep config (.toml or .json)")
    p.add_argument("--out", required=True, type=Path, help="sweep directory to create or resume")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default: auto)")
    p.add_argument("--chunk-size", type=_positive_int, default=None,
                   help="runs per ensemble (default: 64 on CPU, sized to free memory on GPU)")
    p.add_argument("--steps", type=_positive_int, default=None, help="override n_steps")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)
    return parser


def main(argv: list[str] | None = None) -> int:
    from grokcast.config import ConfigError
    from grokcast.store import StoreError

    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], None] = args.func
    try:
        handler(args)
    except (ConfigError, StoreError, ValueError, FileNotFoundError) as err:
        print(f"grokcast {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"grokcast {args.command}: interrupted; finished runs are stored", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
