"""The basic_pitch member: its torch port equals onnxruntime on the wheel's nmp.onnx, and basic-pitch's own inference.

basic_pitch.inference cannot be imported here (it imports pretty_midi and,
through note_creation, more of its undeclared dependencies), so
:func:`library_inference` compiles its own ``Model``, ``window_audio_file``,
``get_audio_input``, ``unwrap_output`` and ``run_inference`` straight from
the installed inference.py and runs them with onnxruntime, as basic-pitch
does when TensorFlow is absent: one window per model call, audio read with
``librosa.load(path, sr=22050)``.
"""

from __future__ import annotations

import ast
import math
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_audio
from hear_gura.errors import CheckpointError, ConfigError
from hear_gura.manifest import Manifest
from hear_gura.members.registry import resolve_params

pytest.importorskip("basic_pitch")  # skip where the wheel is absent (its package imports without TensorFlow)
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from hear_gura.members import basic_pitch as bp  # noqa: E402
from hear_gura.members.basic_pitch_net import BasicPitchNet, WINDOW_SAMPLES  # noqa: E402

OUTPUT_NAMES = {"note": "StatefulPartitionedCall:1", "onset": "StatefulPartitionedCall:2",
                "contour": "StatefulPartitionedCall:0"}
INPUT_NAME = "serving_default_input_2:0"
#: Port vs onnxruntime, max abs difference. Measured on CPU: ~2e-6 on every output. A matrix-product
#: low-pass filter gave up to 3e-4 (and float64 arithmetic 2.7e-4: onnxruntime's own float32 rounding).
TOLERANCE = 1e-4


def member(**params):
    return bp.BasicPitchMember("bp", resolve_params("basic_pitch", "bp", params), Manifest(), False).eval()


@pytest.fixture(scope="module")
def aligned():
    return member()


@pytest.fixture(scope="module")
def drifting():
    return member(windowing="basic_pitch")


def onnx_with_internal_outputs(path: Path) -> tuple:
    """The model with the graph values our states 0, 1, 3, 5 correspond to added as outputs (found by structure)."""
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    [batchnorm] = [n.output[0] for n in graph.node if n.op_type == "Add" and n.input[1] in inits
                   and inits[n.input[1]].shape == (1,)]
    internal = {"cqt": batchnorm}
    for node in (n for n in graph.node if n.op_type == "Relu"):
        after = consumers[node.output[0]][0]
        shape = inits[after.input[1]].shape if after.op_type == "Conv" else None
        name = {(1, 8, 5, 5): "contour_hidden", (1, 32, 7, 3): "note_hidden", None: "onset_hidden"}[shape]
        internal[name] = node.output[0]
    for value in internal.values():
        graph.output.append(onnx.helper.make_tensor_value_info(value, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # no spinning thread pool beside torch's
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]), internal


def test_port_equals_onnxruntime_on_every_output_and_internal_layer(aligned):
    session, internal = onnx_with_internal_outputs(bp.packaged_onnx())
    names = {**OUTPUT_NAMES, **internal}
    n = np.arange(WINDOW_SAMPLES) / 22050
    rng = np.random.default_rng(0)
    windows = np.stack([  # chords with a late entry and low noise (wide log range); noise; silence
        sum(np.sin(2 * np.pi * f * n) for f in (196, 247, 294)) * 0.2 * (n > 0.7) + 1e-3 * rng.standard_normal(n.size),
        0.1 * rng.standard_normal(n.size),
        np.zeros(n.size),
    ]).astype(np.float32)
    with torch.no_grad():
        got = aligned.net(torch.from_numpy(windows))
    worst = {}
    for i, window in enumerate(windows):  # one window per call, as basic-pitch runs it
        expected = dict(zip(names, session.run(list(names.values()), {INPUT_NAME: window[None, :, None]})))
        expected["cqt"] = expected["cqt"][..., 0]
        for key, value in expected.items():
            assert got[key][i].shape == value[0].shape
            worst[key] = max(worst.get(key, 0.0), float(np.abs(got[key][i].numpy() - value[0]).max()))
    assert set(worst) == {"note", "onset", "contour", "cqt", "contour_hidden", "note_hidden", "onset_hidden"}
    assert max(worst.values()) < TOLERANCE, worst
    # Silence: the normalisation's 0 / 0 gives zeros (then the BatchNorm shift), not NaN.
    assert torch.equal(got["cqt"][2], torch.full_like(got["cqt"][2], float(aligned.net.bn_shift)))


def library_inference():
    """basic-pitch 0.4.0's run_inference (and helpers), compiled from its installed inference.py."""
    import importlib.util
    import json
    import logging
    import os
    import pathlib

    import librosa
    import numpy.typing as npt
    from basic_pitch import constants

    source = Path(importlib.util.find_spec("basic_pitch").origin).parent / "inference.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    wanted = {"Model", "window_audio_file", "get_audio_input", "unwrap_output", "run_inference"}
    body = [node for node in tree.body if getattr(node, "name", None) in wanted]
    assert {node.name for node in body} == wanted
    namespace = {name: getattr(typing, name) for name in typing.__all__}
    namespace.update(np=np, npt=npt, librosa=librosa, ort=ort, os=os, json=json, logging=logging, pathlib=pathlib,
                     enum=__import__("enum"), TF_PRESENT=False, CT_PRESENT=False, TFLITE_PRESENT=False,
                     ONNX_PRESENT=True, **{k: getattr(constants, k) for k in dir(constants) if k.isupper()})
    exec(compile(ast.Module(body=body, type_ignores=[]), str(source), "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def library():
    return library_inference()


def test_basic_pitch_windowing_equals_basic_pitchs_own_inference(drifting, aligned, library, tmp_path):
    soundfile = pytest.importorskip("soundfile")
    audio = make_audio(3.5, seed=3)  # 3 windows of basic-pitch
    path = tmp_path / "clip.wav"
    soundfile.write(path, audio[0].numpy(), 16000, subtype="FLOAT")  # librosa.load reads these floats back exactly
    expected = library["run_inference"](path, library["Model"](bp.packaged_onnx()))
    with torch.no_grad():
        last = list(drifting.states(audio, drifting.num_states - 1))[-1][0]
        last_aligned = list(aligned.states(audio, aligned.num_states - 1))[-1][0]
    grid = drifting.frame_grid(audio.shape[1])
    assert grid.count == last.shape[0] == expected["note"].shape[0] == 301
    got = dict(zip(bp.OUTPUTS, last[:, :440].split([88, 88, 264], dim=-1)))
    for key in bp.OUTPUTS:
        assert np.abs(got[key].numpy() - expected[key]).max() < TOLERANCE, key
    assert not last[:, 440:].any()  # zero padding to the 2816 width
    # The aligned windows give the same first window, then frames on their own time (and all of them).
    assert torch.equal(last_aligned[: bp.KEPT_FRAMES], last[: bp.KEPT_FRAMES])
    assert not torch.allclose(last_aligned[bp.KEPT_FRAMES : 300], last[bp.KEPT_FRAMES : 300], atol=1e-3)
    assert aligned.frame_grid(audio.shape[1]).count == last_aligned.shape[0] == math.ceil(77175 / 256) == 302


def test_frame_and_window_counts_equal_basic_pitchs_for_any_length(library):
    hop = bp.WINDOW_HOPS["basic_pitch"]
    for samples in [186, 185, 1000, 16000, 26240, 26250, 26260, 52480, 52500, 160000, 1_920_000, 1_920_001]:
        length = bp.resampled_length(samples)
        windows = len(list(library["window_audio_file"](np.zeros(length + 3840, np.float32), hop)))
        output = np.zeros((windows, 172, 1), np.float32)
        frames = library["unwrap_output"](output, length, 30).shape[0]
        assert (bp.window_count(samples, "basic_pitch"), bp.frame_count(samples, "basic_pitch")) == (windows, frames)
        assert bp.window_count(samples, "aligned") * bp.KEPT_FRAMES >= bp.frame_count(samples, "aligned")
    assert bp.BasicPitchMember.shortest_clip("basic_pitch") == 186 and bp.frame_count(185, "basic_pitch") == 0


def test_aligned_frames_stay_on_time_where_basic_pitchs_drift(aligned, drifting):
    """A note starting in window 0 and the same note starting in window 2 peak at the same offset from
    their onset frame with aligned windows; basic-pitch's frames are 2 x 188 samples early in window 2."""
    rate, hop = 16000, 256 * 16000 / 22050
    onsets = (40, 330)  # frames: in window 0 and in window 2 (kept frames 284..425)
    t = np.arange(int(4.5 * rate)) / rate
    clip = np.zeros_like(t)
    for frame in onsets:
        start = frame * hop / rate
        on = (t >= start) & (t < start + 0.4)
        clip += on * np.exp(-3 * (t - start).clip(0)) * sum(np.sin(2 * np.pi * 440 * k * t) / k for k in (1, 2, 3))
    audio = torch.from_numpy(0.3 * clip).float()[None]
    key = 69 - 21  # A4 in the 88-key onset posteriorgram
    peaks = {}
    with torch.no_grad():
        for name, m in (("aligned", aligned), ("basic_pitch", drifting)):
            onset = list(m.states(audio, 6))[6][0, :, key]  # state 6: the onset posteriorgram
            peaks[name] = [int(onset[f - 8 : f + 8].argmax()) + f - 8 - f for f in onsets]
    assert peaks["aligned"][0] == peaks["aligned"][1]
    assert peaks["basic_pitch"][0] == peaks["aligned"][0]
    assert peaks["basic_pitch"][1] > peaks["basic_pitch"][0]  # 376 samples = 1.5 frames late


def test_describe_equals_the_built_member_and_the_grid(aligned, drifting):
    from hear_gura.identity import describe_member
    from hear_gura.members.base import MemberSpec

    for m, params in ((aligned, {}), (drifting, {"windowing": "basic_pitch"})):
        described = describe_member(MemberSpec("bp", "basic_pitch", params), Manifest())
        built = m.description()
        assert {k: v for k, v in described.to_dict().items() if k != "weights"} == \
            {k: v for k, v in built.to_dict().items() if k != "weights"}
        assert "nmp.onnx" in described.weights
    assert (aligned.num_states, aligned.width, aligned.receptive_field, aligned.sample_rate) == (8, 2816, 1, 22050)
    assert aligned.default_hop == 256 * 16000 / 22050 and not aligned.supports_padding
    grid = aligned.frame_grid(16000)
    assert grid.count == 87 and grid.first_centre == 0.0
    assert torch.allclose(grid.centres_ms().double(), torch.arange(87, dtype=torch.float64) * 256 / 22.05)
    outputs = describe_member(MemberSpec("bp", "basic_pitch", {"states": "outputs"}), Manifest())
    assert (outputs.num_states, outputs.width) == (4, 440)


def test_outputs_states_batches_and_compute(aligned):
    compact = member(states="outputs")
    audio = make_audio(1.0, batch=2, seed=4)
    with torch.no_grad():
        full = list(aligned.states(audio, 7))
        small = list(compact.states(audio, 3))
        alone = list(aligned.states(audio[1:], 2))  # a clip alone, states 0..2 only
    assert [s.shape for s in small] == [(2, 87, 440)] * 4 and [s.shape for s in full] == [(2, 87, 2816)] * 8
    for i, k in enumerate((2, 4, 6, 7)):  # contour, note, onset, outputs
        assert torch.equal(small[i], full[k][..., :440])
    assert len(alone) == 3
    for a, b in zip(alone, full):  # == the same clip in a batch, to float rounding (measured ~1e-5: batched convs)
        assert (a[0] - b[1]).abs().max() < TOLERANCE
    # Unequal lengths go through the base class one length at a time, each with its own grid.
    from hear_gura.layers import parse_layer_choice

    with torch.no_grad():
        [features] = aligned.compute(audio, [parse_layer_choice("last", 8)], lengths=[16000, 12000])
    assert [g.count for g in features.grids] == [87, 65]
    assert (features.clip(0) - full[7][0]).abs().max() < TOLERANCE
    assert not features.values[1, 65:].any()


def test_bad_params_and_a_foreign_model_file_fail_clearly(tmp_path):
    with pytest.raises(ConfigError, match="states"):
        resolve_params("basic_pitch", "bp", {"states": "hidden"})
    with pytest.raises(ConfigError, match="batch_windows"):
        bp.BasicPitchMember("bp", resolve_params("basic_pitch", "bp", {"batch_windows": 0}), Manifest(), False)
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])], "foreign",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(onnx.helper.make_model(graph), str(foreign))
    with pytest.raises(CheckpointError, match="not the Basic Pitch"):
        BasicPitchNet.from_onnx(foreign)
    with pytest.raises(CheckpointError, match="basic-pitch==0.4.0"):
        BasicPitchNet.from_onnx(tmp_path / "missing.onnx")
