"""Table 3: what one device request uploads and downloads, and the transfer delays, for
every backbone; computed from untrained checkpoints, since sizes depend on the architecture
and the data's shapes, not on the weights."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from benchmarks.paper.cells import write_json
from benchmarks.paper.grids import CLICK_BACKBONES, IMAGE_BACKBONES, TABLE2_PROTOCOL, prepared
from benchmarks.paper.values import TABLE3


# ---- Table 3 ------------------------------------------------------------------------------
def transfer_rows(served) -> list[dict[str, Any]]:
    """Upload (raw vs embedding) and download bytes of one device request and their delays.

    Sizes follow the generator's wire accounting (actors/service/generator.py): raw clicks are int32
    item ids, a raw image is one float32 frame, embeddings are float32 (R, input_dim); the
    download is the dynamic layers in float32 (``param_bytes``). Delays are the fleet's
    ``bytes / bandwidth + RTT`` per network class (actors/devices/profiles.py).
    """
    from actors.devices.profiles import NETWORK_CLASSES
    from actors.service.served import param_bytes

    R = served.max_samples
    raw = 4 * math.prod(served.image_shape) if served.kind == "images" else 4 * R
    uploads = {"raw": raw, "embedding": 4 * R * served.input_dim}
    down = param_bytes(served, "float32")
    rows = []
    for mode, up in uploads.items():
        row = {"upload": mode, "upload_bytes": up, "download_bytes": down}
        for name, net in NETWORK_CLASSES.items():
            row[f"upload_ms@{name}"] = 1000 * net.transfer_s(up)
            row[f"download_ms@{name}"] = 1000 * net.transfer_s(down)
        rows.append(row)
    return rows


def size_checkpoint(dataset: str, backbone: str, data: Path, out: Path) -> Path:
    """An untrained seed-0 DUET checkpoint built exactly as `duet-sim train` builds its model.

    Transfer sizes depend on the architecture and the dataset's shapes, not on the weights,
    so Table 3 does not wait for the training grids.
    """
    import torch

    from duet.checkpoint import save_checkpoint
    from duet.model import DeviceModel
    from pipelines.tensors import load_meta
    from simulation.train_recipe import TrainOptions, meta_summary, model_config

    meta = load_meta(data)
    torch.manual_seed(0)
    model = DeviceModel(model_config(TrainOptions(dataset, backbone, "duet"), meta))
    return save_checkpoint(model, out, info={"dataset_meta": meta_summary(meta)})


def write_table3(clicks: str, data_dir: Path | None, results: Path, runs: Path) -> None:
    """Table 3's rows of every click backbone on Table 1's dataset ``clicks`` and of every
    CK+ backbone, at Table 2's input."""
    from actors.service.served import load_served_model

    sources = [(clicks, b) for b in CLICK_BACKBONES]
    sources += [("ckplus", b) for b in IMAGE_BACKBONES]
    for dataset, backbone in sources:
        protocol = TABLE2_PROTOCOL if dataset == "ckplus" else ""
        data = prepared(dataset, data_dir, runs, protocol)
        run = size_checkpoint(dataset, backbone, data, runs / "table3" / dataset / backbone)
        out = results / "table3" / f"{dataset}-{backbone}.json"
        payload = {
            "dataset": dataset,
            "backbone": backbone,
            "rows": transfer_rows(load_served_model(run)),
        }
        write_json(out, payload)
        print(f"table3 {dataset} {backbone}: written {out}")


def table3_md(results: Path) -> list[str]:
    """Table 3 row by row: our sizes and transfer delays beside the paper's. Delays are
    bytes / bandwidth, as the paper computes them (the fleet adds an RTT; see the text)."""
    from actors.devices.profiles import NETWORK_CLASSES

    nets = list(NETWORK_CLASSES)
    lines = [
        "| model | upload | up bytes ours / paper | down bytes ours / paper | "
        + " | ".join(f"up / down ms @ {n}: ours / paper" for n in nets)
        + " |",
        "|---|---|---:|---:|" + "---:|" * len(nets),
    ]
    files = sorted((results / "table3").glob("*.json"))
    for f in files:
        d = json.loads(f.read_text())
        paper = TABLE3["clicks" if d["dataset"] != "ckplus" else d["backbone"]]
        for r in d["rows"]:
            mode = r["upload"]
            p_up = paper["up_raw" if mode == "raw" else "up_embedding"]
            cells = []
            for n in nets:
                bandwidth = NETWORK_CLASSES[n].bandwidth_bytes_s
                p_raw, p_emb, p_down = paper["delays"][n]
                p_upload = p_raw if mode == "raw" else p_emb
                cells.append(
                    f"{1000 * r['upload_bytes'] / bandwidth:.3g} / "
                    f"{1000 * r['download_bytes'] / bandwidth:.3g} : "
                    f"{_ms(p_upload)} / {_ms(p_down)}"
                )
            lines.append(
                f"| {d['backbone']} ({d['dataset']}) | {mode} | "
                f"{r['upload_bytes']:,} / {p_up:,.0f} | "
                f"{r['download_bytes']:,} / {paper['down']:,.0f} | " + " | ".join(cells) + " |"
            )
    if not files:
        lines.append("| pending | | | |" + " |" * len(nets))
    return lines


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{1000 * seconds:.3g}"
