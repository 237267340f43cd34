#!/usr/bin/env python3
"""Unpacks an OCI image layout (as `buildah push IMAGE oci:DIR` writes it) into a root file system,
layer by layer, keeping numeric owners, and prints the image's environment (one `KEY=VALUE` a line),
user, entrypoint and command as JSON on stdout. deploy/test-image runs the image's binary in that
root with chroot: containers cannot run on the build machines, processes can.

    oci_extract.py OCI_DIR ROOTFS_DIR
"""
import json
import os
import sys
import tarfile


def blob(oci, digest):
    algo, hexd = digest.split(":", 1)
    return os.path.join(oci, "blobs", algo, hexd)


def main():
    oci, root = sys.argv[1], sys.argv[2]
    with open(os.path.join(oci, "index.json")) as f:
        index = json.load(f)
    with open(blob(oci, index["manifests"][0]["digest"])) as f:
        manifest = json.load(f)
    with open(blob(oci, manifest["config"]["digest"])) as f:
        config = json.load(f).get("config", {})
    os.makedirs(root, exist_ok=True)
    for layer in manifest["layers"]:
        with tarfile.open(blob(oci, layer["digest"]), "r:*") as tar:
            for member in tar.getmembers():
                name = os.path.normpath(member.name).lstrip("/")
                if name.startswith("..") or os.path.basename(name).startswith(".wh."):
                    continue
                member.name = name
                tar.extract(member, root, numeric_owner=True, filter="fully_trusted")
    json.dump(
        {
            "env": config.get("Env", []),
            "user": config.get("User", ""),
            "entrypoint": config.get("Entrypoint", []),
            "cmd": config.get("Cmd", []),
            "exposed": sorted(config.get("ExposedPorts", {})),
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
