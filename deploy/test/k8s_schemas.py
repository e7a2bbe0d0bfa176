#!/usr/bin/env python3
"""Builds the offline JSON schemas kubeconform validates the Helm chart's output against.

Kubernetes: the strict schemas shipped in the `kubernetes-validate` wheel (PyPI). They refer to
one shared `_definitions.json` through an absolute https `$id`, which kubeconform would fetch;
this rewrites the references to the file next to them and drops the `$id`s, so nothing is
fetched.

CRDs (KEDA's ScaledObject and TriggerAuthentication): the `openAPIV3Schema` of each CRD file,
made strict the way kubeconform's openapi2jsonschema does it (`additionalProperties: false` on
every object that lists its properties and does not preserve unknown fields).

Usage: k8s_schemas.py WHEEL KUBE_VERSION CRD_FILE... OUT_DIR
"""

import json
import os
import sys
import zipfile

import yaml


def local_refs(node):
    """Drops `$id`s and points `_definitions.json` references at the sibling file."""
    if isinstance(node, dict):
        node.pop("$id", None)
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = value.replace("/api/_definitions.json#", "_definitions.json#")
            else:
                out[key] = local_refs(value)
        return out
    if isinstance(node, list):
        return [local_refs(item) for item in node]
    return node


def strict(schema):
    """Forbids unknown fields where the CRD schema lists the fields an object has."""
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for item in schema:
            strict(item)
    return schema


def kubernetes(wheel, version, out_dir):
    prefix = f"kubernetes_validate/kubernetes-json-schema/{version}-local-strict/"
    target = os.path.join(out_dir, version)
    os.makedirs(target, exist_ok=True)
    count = 0
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith(prefix) and name.endswith(".json"):
                schema = local_refs(json.loads(archive.read(name)))
                with open(os.path.join(target, name[len(prefix):]), "w") as f:
                    json.dump(schema, f)
                count += 1
    if count == 0:
        sys.exit(f"{wheel} has no schemas for Kubernetes {version}")
    return count


def crds(paths, out_dir):
    count = 0
    for path in paths:
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group = crd["spec"]["group"]
                kind = crd["spec"]["names"]["kind"].lower()
                target = os.path.join(out_dir, "crds", group)
                os.makedirs(target, exist_ok=True)
                for version in crd["spec"]["versions"]:
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    name = f"{kind}_{version['name']}.json"
                    with open(os.path.join(target, name), "w") as f:
                        json.dump(schema, f)
                    count += 1
    return count


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    wheel, version, *crd_files, out_dir = sys.argv[1:]
    k8s = kubernetes(wheel, version, out_dir)
    custom = crds(crd_files, out_dir)
    print(f"schemas: {k8s} Kubernetes {version}, {custom} CRD versions in {out_dir}")


if __name__ == "__main__":
    main()
