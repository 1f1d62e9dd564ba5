#!/usr/bin/env bash
# Prints the median of every criterion benchmark in target/criterion, and the login bench's
# ratios against the raw argon2id verify measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import json, glob, os
rows = {}
for path in sorted(glob.glob("target/criterion/*/*/new/estimates.json")):
    name = "/".join(path.split(os.sep)[2:4])
    rows[name] = json.load(open(path))["median"]["point_estimate"]
def fmt(ns):
    return f"{ns/1e6:.3f} ms" if ns >= 1e6 else f"{ns/1e3:.2f} µs"
for name, ns in rows.items():
    print(f"{name:45s} median {fmt(ns)}")
raw = rows.get("login/raw_argon2id_verify")
full = rows.get("login/full_flow_default_argon2")
reused = rows.get("login/raw_argon2id_reused_memory")
if raw and full:
    print(f"ratio full_flow_default_argon2 / raw_argon2id_verify = {full/raw:.3f}")
inter = "target/criterion/interleaved-login.json"
if os.path.exists(inter):
    d = json.load(open(inter))
    print(f"interleaved, {d['rounds']} rounds: raw verify {fmt(d['raw_ns'])}, reused-memory argon2 {fmt(d['reused_ns'])}, full flow {fmt(d['flow_ns'])}")
    print(f"  ratio flow/raw verify {d['ratio']:.3f}, flow/reused-memory argon2 {d['ratio_reused']:.3f}")
for alg in ("ES256", "EdDSA", "RS256"):
    ours, raw_sign = rows.get(f"issue/access_token_{alg}"), rows.get(f"issue/raw_sign_{alg}")
    if ours and raw_sign:
        print(f"ratio issue/access_token_{alg} / issue/raw_sign_{alg} = {ours/raw_sign:.3f}")
ours, raw_decode = rows.get("verify/access_token_cached_ES256"), rows.get("verify/raw_decode_ES256")
if ours and raw_decode:
    print(f"ratio verify/access_token_cached_ES256 / verify/raw_decode_ES256 = {ours/raw_decode:.3f}")
for alg in ("ES256", "RS256"):
    ours, raw_decode = rows.get(f"federation/callback_{alg}"), rows.get(f"federation/raw_decode_{alg}")
    if ours and raw_decode:
        print(f"ratio federation/callback_{alg} / federation/raw_decode_{alg} = {ours/raw_decode:.3f}")
inter = "target/criterion/interleaved-federation.json"
if os.path.exists(inter):
    for alg, d in json.load(open(inter)).items():
        print(f"interleaved federation {alg}, {d['rounds']} rounds: callback {fmt(d['callback_ns'])}, raw decode of the same token {fmt(d['raw_ns'])}, ratio {d['ratio']:.3f}")
if reused and full:
    print(f"ratio full_flow_default_argon2 / raw_argon2id_reused_memory = {full/reused:.3f}")
PY
