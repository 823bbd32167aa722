"""An experiment for issue 6's 4,800-run GPU target, not part of the package: the MLP block
of a training step (from the residual at '=' to the loss and back) as two Triton kernels,
against the same block in PyTorch (:func:`grokcast.model._loss_and_grads`' products).

Why: on an H200 (2026-11-28, ``gpu_checks.py --stages anatomy``) a compiled 2,400-run step
at 317 examples per run took 9.4 ms, of which cuBLAS's fp32 batched products (SIMT FMA
kernels, no tensor cores) took ~5.7 ms, and the MLP's (R, N, d_mlp) activations make
several round trips through memory. Here the activations stay on chip, and each product can
run on the tensor cores in ``tf32x3`` (three TF32 products per fp32 product, about fp32's
accuracy) as well as in plain IEEE fp32 FMAs.

Kernel 1, one program per (run, block of examples): hidden = relu(resid W_in),
logits = resid W_U + hidden (W_out W_U), the per-example loss and the loss's gradient with
respect to the logits (dlogits). Kernel 2, one program per (run, block of d_mlp columns):
recomputes its block of hidden, and sums over the run's examples in a fixed order (no
atomics: the same inputs give the same result) hidden^T dlogits, resid^T dhidden and each
example's dhidden W_in^T (one partial per column block, summed afterwards).

Checked on a CPU with Triton's interpreter (``TRITON_INTERPRET=1``, small sizes) against
float64 PyTorch; on a GPU::

    python3 benchmarks/fused_mlp_probe.py --runs 2400 --examples 317

prints ms per call (CUDA-graph replays) of the PyTorch block and of each kernel variant, and
each variant's largest error relative to float64, next to the PyTorch fp32 block's.

Measured on an H200 (2026-11-28, one call): PyTorch's block 5.79 ms eager, 5.22 ms compiled;
the kernels at best 6.27 ms (tf32x3, 64-example blocks), 77-92 ms with 32-example blocks,
3.59 ms in plain TF32 at errors of 1e-3 and more. Not adopted: benchmarks/README.md, "GPU
(2026-11-28)". Triton is not a grokcast dependency; on a CPU, install it beside torch and run
this with ``TRITON_INTERPRET=1 ... --runs 3 --examples 37`` to check the kernels' sums.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import triton
import triton.language as tl


@triton.jit
def _forward_loss(x_ptr, w_in_ptr, om_ptr, w_u_ptr, lab_ptr, wt_ptr,
                  logits_ptr, dl_ptr, loss_ptr, N: tl.constexpr,
                  D: tl.constexpr, F: tl.constexpr, V: tl.constexpr, VP: tl.constexpr,
                  BN: tl.constexpr, PREC: tl.constexpr):
    r = tl.program_id(0)
    n = tl.program_id(1) * BN + tl.arange(0, BN)
    d, f, v = tl.arange(0, D), tl.arange(0, F), tl.arange(0, VP)
    nm, vm = n < N, v < V
    x = tl.load(x_ptr + r * N * D + n[:, None] * D + d[None, :], mask=nm[:, None], other=0.0)
    w_in = tl.load(w_in_ptr + r * D * F + d[:, None] * F + f[None, :])
    om = tl.load(om_ptr + r * F * V + f[:, None] * V + v[None, :], mask=vm[None, :], other=0.0)
    w_u = tl.load(w_u_ptr + r * D * V + d[:, None] * V + v[None, :], mask=vm[None, :], other=0.0)
    h = tl.maximum(tl.dot(x, w_in, input_precision=PREC), 0.0)
    lg = tl.dot(x, w_u, input_precision=PREC) + tl.dot(h, om, input_precision=PREC)
    tl.store(logits_ptr + r * N * V + n[:, None] * V + v[None, :], lg, mask=nm[:, None] & vm[None, :])
    lg = tl.where(vm[None, :], lg, float("-inf"))
    shifted = lg - tl.max(lg, 1)[:, None]
    e = tl.exp(shifted)
    s = tl.sum(e, 1)
    lab = tl.load(lab_ptr + r * N + n, mask=nm, other=0)
    wt = tl.load(wt_ptr + r * N + n, mask=nm, other=0.0)
    hit = v[None, :] == lab[:, None]
    logp = tl.sum(tl.where(hit, shifted, 0.0), 1) - tl.log(s)
    tl.store(loss_ptr + r * N + n, -logp * wt, mask=nm)
    dl = (e / s[:, None] - tl.where(hit, 1.0, 0.0)) * wt[:, None]
    tl.store(dl_ptr + r * N * VP + n[:, None] * VP + v[None, :], tl.where(vm[None, :], dl, 0.0),
             mask=nm[:, None])


@triton.jit
def _backward(x_ptr, w_in_ptr, om_ptr, dl_ptr, g_in_ptr, hd_ptr, dres_ptr, N: tl.constexpr,
              D: tl.constexpr, F: tl.constexpr, V: tl.constexpr, VP: tl.constexpr,
              BN: tl.constexpr, FB: tl.constexpr, PREC: tl.constexpr):
    r, c = tl.program_id(0), tl.program_id(1)
    d, fb, v = tl.arange(0, D), c * FB + tl.arange(0, FB), tl.arange(0, VP)
    vm = v < V
    w_in = tl.load(w_in_ptr + r * D * F + d[:, None] * F + fb[None, :])  # (D, FB)
    om = tl.load(om_ptr + r * F * V + fb[:, None] * V + v[None, :], mask=vm[None, :], other=0.0)
    g_in = tl.zeros((D, FB), dtype=tl.float32)
    hd = tl.zeros((FB, VP), dtype=tl.float32)
    for n0 in range(0, N, BN):
        n = n0 + tl.arange(0, BN)
        nm = n < N
        x = tl.load(x_ptr + r * N * D + n[:, None] * D + d[None, :], mask=nm[:, None], other=0.0)
        dl = tl.load(dl_ptr + r * N * VP + n[:, None] * VP + v[None, :], mask=nm[:, None], other=0.0)
        h = tl.maximum(tl.dot(x, w_in, input_precision=PREC), 0.0)  # (BN, FB)
        hd += tl.dot(tl.trans(h), dl, input_precision=PREC)
        dh = tl.dot(dl, tl.trans(om), input_precision=PREC)
        dh = tl.where(h > 0.0, dh, 0.0)
        g_in += tl.dot(tl.trans(x), dh, input_precision=PREC)
        dres = tl.dot(dh, tl.trans(w_in), input_precision=PREC)  # (BN, D): this block's part
        tl.store(dres_ptr + ((r * (F // FB) + c) * N + n[:, None]) * D + d[None, :], dres,
                 mask=nm[:, None])
    tl.store(g_in_ptr + r * D * F + d[:, None] * F + fb[None, :], g_in)
    tl.store(hd_ptr + r * F * V + fb[:, None] * V + v[None, :], hd, mask=vm[None, :])


def fused_block(resid, W_in, W_out, W_U, labels, weight, prec="tf32x3", BN=32, FB=64, BN2=32,
                warps=(4, 4)):
    """The MLP block's loss, logits and gradients: (loss (R,), logits, dresid, g) with g for
    W_in, W_out and W_U."""
    R, N, D = resid.shape
    F, V = W_in.shape[2], W_U.shape[2]
    VP = max(16, triton.next_power_of_2(V))
    out_map = torch.bmm(W_out, W_U)
    logits = torch.empty(R, N, V, device=resid.device)
    dl = torch.empty(R, N, VP, device=resid.device)
    loss = torch.empty(R, N, device=resid.device)
    _forward_loss[(R, triton.cdiv(N, BN))](resid, W_in, out_map, W_U, labels, weight, logits, dl,
                                           loss, N, D, F, V, VP, BN, prec, num_warps=warps[0])
    g_in = torch.empty(R, D, F, device=resid.device)
    hd = torch.empty(R, F, V, device=resid.device)
    parts = torch.empty(R, F // FB, N, D, device=resid.device)
    _backward[(R, F // FB)](resid, W_in, out_map, dl, g_in, hd, parts, N, D, F, V, VP, BN2, FB,
                            prec, num_warps=warps[1])
    dlv = dl[..., :V]
    t = lambda a: a.transpose(1, 2)  # noqa: E731
    dresid = parts.sum(1) + torch.bmm(dlv, t(W_U))
    g = {"W_in": g_in, "W_out": torch.bmm(hd, t(W_U)),
         "W_U": torch.baddbmm(torch.bmm(t(resid), dlv), t(W_out), hd)}
    return loss.sum(1), logits, dresid, g


def torch_block(resid, W_in, W_out, W_U, labels, weight):
    """The same block as grokcast.model._loss_and_grads computes it (fp32 products)."""
    t = lambda a: a.transpose(1, 2)  # noqa: E731
    hidden = torch.bmm(resid, W_in).relu_()
    out_map = torch.bmm(W_out, W_U)
    logits = torch.baddbmm(torch.bmm(resid, W_U), hidden, out_map)
    logp = torch.log_softmax(logits, -1)
    lab = labels.unsqueeze(-1)
    loss = -(logp.gather(-1, lab).squeeze(-1) * weight).sum(1)
    dl = logp.exp()
    dl.scatter_add_(-1, lab, torch.full_like(lab, -1, dtype=dl.dtype))
    dl.mul_(weight.unsqueeze(-1))
    hd = torch.bmm(t(hidden), dl)
    g = {"W_U": torch.baddbmm(torch.bmm(t(resid), dl), t(W_out), hd), "W_out": torch.bmm(hd, t(W_U))}
    dh = torch.bmm(dl, t(out_map))
    dh = torch.where(hidden > 0, dh, 0.0)
    g["W_in"] = torch.bmm(t(resid), dh)
    dresid = torch.baddbmm(torch.bmm(dl, t(W_U)), dh, t(W_in))
    return loss, logits, dresid, g


def inputs(R, N, device, D=64, F=256, V=24, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mk = lambda *s, scale=1.0: (torch.randn(*s, generator=gen) * scale).to(device)  # noqa: E731
    resid = mk(R, N, D)
    W_in, W_out, W_U = mk(R, D, F, scale=D**-0.5), mk(R, F, D, scale=D**-0.5), mk(R, D, V, scale=V**-0.5)
    labels = torch.randint(0, V, (R, N), generator=gen).to(device)
    n_real = N - (torch.arange(R) % 3)  # some runs padded, as in a packed chunk
    mask = torch.arange(N)[None, :] < n_real[:, None]
    weight = (mask.double() / n_real[:, None]).float().to(device)
    return resid, W_in, W_out, W_U, labels, weight


def errors(got, want):
    """Largest |got - want| / max|want| over the outputs."""
    loss, logits, dresid, g = got
    wl, wlg, wdr, wg = want
    pairs = [(loss, wl), (logits, wlg), (dresid, wdr)] + [(g[k], wg[k]) for k in wg]
    names = ["loss", "logits", "dresid"] + [f"g_{k}" for k in wg]
    return {n: float((a.double() - b).abs().max() / b.abs().max()) for n, (a, b) in zip(names, pairs)}


def graphed_ms(fn, n=20):
    if not torch.cuda.is_available():
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return 1e3 * (time.perf_counter() - t0) / n
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn(), fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    times = []
    for _ in range(3):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            graph.replay()
        torch.cuda.synchronize()
        times.append(1e3 * (time.perf_counter() - t0) / n)
    return round(sorted(times)[1], 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2400)
    ap.add_argument("--examples", type=int, default=317)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = inputs(args.runs, args.examples, device)
    want = torch_block(*(a.double() if a.is_floating_point() else a for a in x))
    out = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu (interpreter)"
           if os.environ.get("TRITON_INTERPRET") else "cpu", "runs": args.runs,
           "examples": args.examples}
    out["torch_fp32"] = {"err": errors(torch_block(*x), want)}
    if device == "cuda":
        out["torch_fp32"]["ms"] = graphed_ms(lambda: torch_block(*x))
        compiled = torch.compile(torch_block, dynamic=False, fullgraph=True)
        compiled(*x)
        out["torch_fp32_compiled"] = {"ms": graphed_ms(lambda: compiled(*x))}
    print(json.dumps(out), flush=True)
    variants = [("tf32x3", 32, 64, 32, (4, 4)), ("ieee", 32, 64, 32, (4, 4)),
                ("tf32x3", 32, 128, 32, (4, 8)), ("tf32x3", 64, 64, 64, (4, 4)),
                ("tf32x3", 16, 256, 16, (4, 8)), ("tf32", 32, 64, 32, (4, 4))]
    if device != "cuda":
        variants = variants[:2]
    for prec, bn, fb, bn2, warps in variants:
        name = f"{prec}_bn{bn}_fb{fb}_bn2{bn2}_w{warps[0]}{warps[1]}"
        try:
            fn = lambda: fused_block(*x, prec=prec, BN=bn, FB=fb, BN2=bn2, warps=warps)  # noqa: E731
            res = {"err": errors(fn(), want)}
            if device == "cuda":
                res["ms"] = graphed_ms(fn)
        except Exception as err:  # one variant's failure (registers, shared memory) is data too
            res = {"error": f"{type(err).__name__}: {err}"[:400]}
        out[name] = res
        print(name, json.dumps(res), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
