#!/usr/bin/env python3
"""The `validate` stage's overlay rendering against Kustomize itself.

Writes CASES random trees of bases (objects of a few kinds and names, in or out of a
namespace; `namePrefix`, `namespace:`, `$patch: delete`; bases using other bases) and an
overlay using some of them, then asks `kubectl kustomize` and Gantry (benches/validate.rs on
the tree) whether any kustomization in it has two objects under one identity. Trees that
Kustomize refuses for another reason are left out. Prints each disagreement and the count.

    scripts/compare-kustomize.py [CASES] [SEED]

Needs `kubectl` (Debian's `kubectl` package, as root: apt-get install -y kubectl).
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = [("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "Namespace"),
         ("rbac.authorization.k8s.io/v1", "ClusterRole"), ("v1", "Service")]
NAMES = ["a", "b", "c"]
NAMESPACES = [None, "x", "w", "default"]


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def tree(root, rnd):
    bases = rnd.randint(2, 4)
    for i in range(bases):
        docs, written = [], []
        for _ in range(rnd.randint(1, 3)):
            api, kind = rnd.choice(KINDS)
            ns = rnd.choice(NAMESPACES)
            meta = f"  name: {rnd.choice(NAMES)}\n" + (f"  namespace: {ns}\n" if ns else "")
            docs.append(f"apiVersion: {api}\nkind: {kind}\nmetadata:\n{meta}")
            written.append(f"    apiVersion: {api}\n    kind: {kind}\n    metadata:\n"
                           + "".join(f"    {line}\n" for line in meta.splitlines()))
        write(f"{root}/b{i}/o.yaml", "---\n".join(docs))
        resources = ["o.yaml"]
        if i > 0 and rnd.random() < 0.4:
            resources.append(f"../b{rnd.randrange(i)}")
        k = "resources:\n" + "".join(f"- {r}\n" for r in resources)
        if rnd.random() < 0.4:
            k += f"namePrefix: p{rnd.randint(0, 1)}-\n"
        if rnd.random() < 0.4:
            k += f"namespace: {rnd.choice(['x', 'w', 'z'])}\n"
        if rnd.random() < 0.3:
            # Delete one of this base's own objects, named as its file writes it.
            k += f"patches:\n- patch: |-\n{rnd.choice(written)}    $patch: delete\n"
        write(f"{root}/b{i}/kustomization.yaml", k)
    picks = rnd.sample(range(bases), rnd.randint(1, bases))
    k = "resources:\n" + "".join(f"- ../b{i}\n" for i in picks)
    if rnd.random() < 0.3:
        k += f"namespace: {rnd.choice(['x', 'w'])}\n"
    write(f"{root}/top/kustomization.yaml", k)


def main():
    cases = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rnd = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    subprocess.run(["cargo", "bench", "--locked", "-q", "--bench", "validate", "--no-run"],
                   cwd=ROOT, check=True)
    out = subprocess.run(["cargo", "bench", "--locked", "-q", "--bench", "validate", "--no-run",
                          "--message-format=json"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    binary = [line for line in out.splitlines() if '"executable":"' in line][-1]
    binary = binary.split('"executable":"')[1].split('"')[0]
    agree = disagree = other = 0
    work = tempfile.mkdtemp()
    try:
        for case in range(cases):
            root = f"{work}/c{case}"
            tree(root, rnd)
            clash, refused = [], False
            for d in sorted(os.listdir(root)):
                built = subprocess.run(["kubectl", "kustomize", f"{root}/{d}"],
                                       capture_output=True, text=True)
                if built.returncode == 0:
                    continue
                if "already registered" in built.stderr or "ID conflict" in built.stderr:
                    clash.append(f"{d}: {built.stderr.strip()[-200:]}")
                else:
                    refused = True
            if refused:
                other += 1
                continue
            report = subprocess.run([binary, root], capture_output=True, text=True,
                                    env={**os.environ, "BENCH_RUNS": "1"}).stdout
            found = [l.strip() for l in report.splitlines()
                     if l.startswith("  ") and ("rendered by" in l or "Kustomize refuses" in l)]
            if bool(clash) == bool(found):
                agree += 1
            else:
                disagree += 1
                print(f"case {case}: kustomize {clash or 'builds'}; gantry {found or 'no clash'}")
                shutil.copytree(root, f"/tmp/compare-kustomize-case-{case}", dirs_exist_ok=True)
    finally:
        shutil.rmtree(work)
    print(f"{agree} agree, {disagree} disagree, {other} refused by Kustomize for other reasons")
    sys.exit(1 if disagree else 0)


main()
