"""The ImageNet loaders (torchvision's PIL workers, and NVIDIA DALI where installed) on generated ImageFolders.

What they must share: the protocol's augmentation (RandomResizedCrop's areas and aspect ratios, a flip
half the time; validation resized and centre-cropped as torchvision does), random draws that leave
torch's and CUDA's generators alone and replay on resume, and bad files skipped and counted, not fatal.
"""
import importlib.util
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

import teacher
from utils.data.imagenet import ImageFolderLoader, IndexedImageFolder
from utils.data.imagenet_recipe import IMAGENET_MEAN, IMAGENET_STD, draw_crop_box, image_generator
from utils.data.synthetic_imagenet import write_image_folder

WIDTH, HEIGHT, SIZE = 240, 180, 32
VAL_RESIZE = round(SIZE * 256 / 224)  # the protocol's (torchvision's reference recipe): resize to 256, crop 224
MEAN, STD = (torch.tensor(values).view(1, 3, 1, 1) for values in (IMAGENET_MEAN, IMAGENET_STD))


def dali_loader(*args, **kwargs):
    pytest.importorskip("nvidia.dali")
    from utils.data.dali import DaliLoader

    return DaliLoader(*args, **kwargs)


LOADERS = {"torchvision": ImageFolderLoader, "dali": dali_loader}


def loader(name, root, train, batch=8, seed=5, workers=0, size=SIZE):
    return LOADERS[name](IndexedImageFolder(root, size, train, seed), batch, "cpu", seed, workers)


def epoch(loader):
    """One pass: [(x, y, idx)] on the CPU."""
    return [tuple(t.cpu() for t in loader.assemble(plan)) for plan in loader.plans()]


def same_batches(first, second) -> bool:
    pairs = [(a, b) for one, two in zip(first, second) for a, b in zip(one, two)]
    return len(first) == len(second) and all(torch.equal(a, b) for a, b in pairs)


@pytest.fixture(scope="module")
def ramps(tmp_path_factory):
    """An ImageFolder of lossless 240 x 180 ramps: red = column, green = row, so a crop shows its own box."""
    root = tmp_path_factory.mktemp("ramps")
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    ramp = Image.fromarray(np.stack([cols, rows, np.full_like(cols, 128)], -1).astype(np.uint8))
    for split in ("train", "val"):
        for c in range(2):
            (root / split / f"c{c}").mkdir(parents=True)
            for i in range(20):
                ramp.save(root / split / f"c{c}" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("photos"), classes=3, train_per_class=4, val_per_class=2, size=40)


def odd_files(root) -> dict:
    """Add ILSVRC-2012's odd files (a PNG named .JPEG, a CMYK JPEG) and two broken ones to class 0 of train."""
    folder, flat = Path(root) / "train" / "n00000000", np.full((50, 60, 3), 90, np.uint8)
    Image.fromarray(flat).save(folder / "png.JPEG", format="PNG")
    Image.fromarray(flat).convert("CMYK").save(folder / "cmyk.JPEG", format="JPEG")
    whole = (folder / "train_0_0.JPEG").read_bytes()
    (folder / "truncated.JPEG").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.JPEG").write_bytes(b"")
    return {name: str(folder / f"{name}.JPEG") for name in ("png", "cmyk", "truncated", "empty")}


def test_uint8_batches_normalised_on_the_device_equal_torchvision_transforms(photos):
    """The old float pipeline, bit for bit: the same crops from the same seeds, the same arithmetic."""
    reference = {True: transforms.Compose([transforms.RandomResizedCrop(SIZE), transforms.RandomHorizontalFlip(),
                                           transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]),
                 False: transforms.Compose([transforms.Resize(VAL_RESIZE), transforms.CenterCrop(SIZE),
                                            transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])}
    for split, train in (("train", True), ("val", False)):
        data = loader("torchvision", photos / split, train, batch=5)
        for number in range(2):
            for x, y, idx in epoch(data):
                expected = []
                for index in idx.tolist():
                    torch.manual_seed(image_generator(5, number, data.num_samples, index).initial_seed())
                    expected.append(reference[train](Image.open(data.dataset.samples[index][0]).convert("RGB")))
                assert torch.equal(x, torch.stack(expected)) and x.is_contiguous(memory_format=torch.channels_last)
                assert y.tolist() == [data.dataset.targets[i] for i in idx.tolist()]


@pytest.mark.parametrize("name", LOADERS)
def test_the_loaders_leave_torch_and_cuda_generators_alone(name, photos, monkeypatch):
    """UNIX draws lambda and the partner permutation from torch's generators: reading images must not move them."""
    data, reseeded = loader(name, photos / "train", True), []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", reseeded.append)  # torch.manual_seed calls it
    before = torch.get_rng_state()
    assert epoch(data)
    assert torch.equal(torch.get_rng_state(), before) and reseeded == []


def test_loader_workers_leave_the_stop_signals_to_the_main_process(photos):
    """Ctrl-C reaches the terminal's whole process group, and torchrun's agent signals each worker's: the loader's
    worker processes are out of it, and live on through SIGINT and SIGUSR1, so that the run saves where it is."""
    data = loader("torchvision", photos / "train", True, batch=4, workers=1)
    plans = data.plans()
    batches = [next(plans)]
    workers = multiprocessing.active_children()
    assert workers and all(os.getpgid(worker.pid) not in (os.getpgid(0), 0) for worker in workers)
    for number in (signal.SIGINT, signal.SIGUSR1):
        for worker in workers:
            os.kill(worker.pid, number)
    time.sleep(0.5)
    batches += list(plans)
    assert len(batches) == len(data) and all(worker.is_alive() for worker in workers)


def test_persistent_workers_draw_each_epochs_own_crops(photos):
    in_process = loader("torchvision", photos / "train", True)
    workers = loader("torchvision", photos / "train", True, workers=2)
    first, second = epoch(in_process), epoch(in_process)
    assert same_batches(epoch(workers), first) and same_batches(epoch(workers), second)
    crops = [{index: image for x, _, idx in batches for index, image in zip(idx.tolist(), x)} for batches in (first, second)]
    assert sum(not torch.equal(crops[0][index], crops[1][index]) for index in crops[0]) > len(crops[0]) / 2


@pytest.mark.parametrize("name", LOADERS)
def test_a_resumed_loader_replays_the_following_epoch(name, photos):
    whole, resumed = loader(name, photos / "train", True), loader(name, photos / "train", True)
    epoch(whole)
    resumed.load_state_dict(whole.state_dict())
    assert same_batches(epoch(resumed), epoch(whole))


@pytest.mark.parametrize("name", ["torchvision", "dali"])
def test_an_epoch_resumed_mid_way_gives_the_rest_of_its_batches_as_the_whole_epoch_does(name, photos, monkeypatch):
    """A run stopped mid-epoch goes on from the next batch: the same images and crops as the uninterrupted
    epoch's, and neither loader decodes the batches before it again (each crop comes from its image's or its
    batch's own random draws)."""
    whole, resumed = loader(name, photos / "train", True, batch=4), loader(name, photos / "train", True, batch=4)
    read = files_read(monkeypatch)
    rest = [tuple(t.cpu() for t in resumed.assemble(plan)) for plan in resumed.plans(first_batch=2)]
    assert sorted(read) == sorted(resumed.dataset.samples[i][0] for i in torch.cat([idx for _, _, idx in rest]).tolist())
    assert len(rest) == len(whole) - 2 and same_batches(rest, epoch(whole)[2:])


def files_read(monkeypatch) -> list:
    """The paths of the files either loader reads from now on, as they are read."""
    read, original = [], IndexedImageFolder.__getitem__
    monkeypatch.setattr(IndexedImageFolder, "__getitem__",
                        lambda self, item: read.append(self.samples[item[1]][0]) or original(self, item))
    if importlib.util.find_spec("nvidia.dali"):
        from utils.data.dali import BatchInputs

        dali_original = BatchInputs.as_dali
        monkeypatch.setattr(BatchInputs, "as_dali", lambda self: read.extend(self.paths) or dali_original(self))
    return read


@pytest.mark.parametrize("name", LOADERS)
def test_odd_files_decode_and_unreadable_ones_are_named_skipped_and_counted(name, tmp_path, capsys):
    root = write_image_folder(tmp_path, classes=2, train_per_class=3, val_per_class=1, size=40)
    odd = odd_files(root)
    data = loader(name, root / "train", True, batch=4)
    path_of = {index: path for index, (path, _) in enumerate(data.dataset.samples)}
    for number in range(2):  # each file is named once, counted in every pass
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            read = [path_of[i] for _, _, idx in epoch(data) for i in idx.tolist()]
        assert sorted(read) == sorted(set(path_of.values()) - {odd["truncated"], odd["empty"]})
        named = sorted(str(w.message).split(":")[0] for w in caught)
        assert named == ([] if number else [f"skipped {odd['empty']}", f"skipped {odd['truncated']}"])
        assert f"train: 2 unreadable image file(s) skipped in this pass: {odd['empty']}, {odd['truncated']}" in \
            capsys.readouterr().out


def ks_statistic(sample, reference) -> float:
    """Two-sample Kolmogorov-Smirnov: the largest gap between the two empirical distribution functions."""
    grid = np.concatenate([sample, reference])
    cdf = [np.searchsorted(np.sort(s), grid, side="right") / len(s) for s in (sample, reference)]
    return float(np.abs(cdf[0] - cdf[1]).max())


def boxes_seen(batches) -> np.ndarray:
    """(width, height, flipped) of each crop, read off the ramps' red (column) and green (row) values."""
    seen = []
    for x, _, _ in batches:
        pixels = (x * STD + MEAN) * 255
        red, green = pixels[:, 0].mean(1), pixels[:, 1].mean(2)  # by column, by row
        width = (red[:, -1] - red[:, 0]) / (1 - 1 / SIZE)  # the end pixels sample half a step in
        height = (green[:, -1] - green[:, 0]) / (1 - 1 / SIZE)
        seen.append(torch.stack([width.abs(), height, (width < 0).float()], 1))
    return torch.cat(seen).numpy()


@pytest.mark.parametrize("name", LOADERS)
def test_crops_follow_random_resized_crops_distribution_and_half_are_flipped(name, ramps):
    data = loader(name, ramps / "train", True, workers=0 if name == "torchvision" else 2)
    width, height, flipped = boxes_seen([batch for _ in range(10) for batch in epoch(data)]).T  # 400 crops
    drawn = np.array([draw_crop_box(torch.Generator().manual_seed(i), HEIGHT, WIDTH)[2:] for i in range(4000)])
    area, ratio = width * height / (WIDTH * HEIGHT), width / height
    expected_area, expected_ratio = drawn[:, 0] * drawn[:, 1] / (WIDTH * HEIGHT), drawn[:, 1] / drawn[:, 0]
    critical = 1.95 * np.sqrt((len(area) + len(drawn)) / (len(area) * len(drawn)))  # KS at the 0.1 % level
    assert ks_statistic(area, expected_area) < critical
    assert ks_statistic(np.log(ratio), np.log(expected_ratio)) < critical
    assert abs(flipped.mean() - 0.5) < 4 * 0.5 / np.sqrt(len(flipped))  # four standard deviations


@pytest.mark.parametrize("name, most, mean", [("torchvision", 0, 0), ("dali", 1, 0.02)])
def test_validation_is_torchvisions_resize_and_centre_crop(name, most, mean, ramps):
    """At most `most` / 255 apart, `mean` / 255 on average, on lossless images: the same scale and centre."""
    data = loader(name, ramps / "val", False)
    expected = transforms.Compose([transforms.Resize(VAL_RESIZE), transforms.CenterCrop(SIZE),
                                   transforms.PILToTensor()])
    for x, _, idx in epoch(data):
        reference = torch.stack([expected(Image.open(data.dataset.samples[i][0]).convert("RGB")) for i in idx.tolist()])
        difference = ((x * STD + MEAN) * 255 - reference).abs()
        assert difference.max() <= most + 1e-3 and difference.mean() <= mean + 1e-3


def test_dali_missing_is_one_line_saying_how_to_install(photos, monkeypatch, exit_status, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)
    argv = ["--dataset", "imagenet", "--data-root", str(photos), "--arch", "imagenet_resnet18", "--loader", "dali",
            "--experiments-dir", str(tmp_path)]
    assert exit_status(teacher.main, argv) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "pip install nvidia-dali-cuda130" in err and "Traceback" not in err


def test_teacher_trains_an_epoch_on_dali_batches(photos, tmp_path, capsys):
    pytest.importorskip("nvidia.dali")
    teacher.main(["--dataset", "imagenet", "--data-root", str(photos), "--arch", "imagenet_resnet18",
                  "--loader", "dali", "--image-size", "32", "--batch-size", "6", "--workers", "1", "--epoch", "2", "--milestones", "1",
                  "--experiments-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "dali loader" in out and "finished" in out


def test_the_loader_flag_is_for_imagenet_only(exit_status, capsys):
    assert exit_status(teacher.main, ["--arch", "resnet8", "--loader", "dali"]) == 2
    assert "--loader is for --dataset imagenet only" in capsys.readouterr().err


def test_bench_reports_each_loaders_rate_beside_the_step(photos, capsys):
    from utils.tools.bench import main

    main(["--dataset", "imagenet", "--data-root", str(photos), "--batch-size", "2", "--batches", "1",
          "--steps", "1", "--workers", "1", "--device", "cpu", "--image-size", "32"])
    out = capsys.readouterr().out
    assert re.search(r"  loader torchvision \(PIL, 1 worker process\(es\)\) +[0-9.]+ +[0-9.]+ +[0-9.]+\n", out)
    assert "per CPU-second   cores for 2,500/s" in out and "training step, imagenet_resnet18 at 32" in out
    assert ("loader dali (CPU backend, 1 thread(s))" in out) != ("loader dali: not installed" in out)
    assert "the pace is set by:" in out


def test_bench_times_kd_and_unixkd_steps_from_a_teacher_under_autocast(photos, capsys, monkeypatch):
    """--teacher adds the two distilling steps (UNIXKD with student_v0.py's ImageNet k and b); --amp reaches them."""
    from utils.tools import bench_imagenet

    amps, original = [], bench_imagenet.train_step
    monkeypatch.setattr(bench_imagenet, "train_step", lambda *args: amps.append(args[-1]) or original(*args))
    args = bench_imagenet.parse_args(["--dataset", "imagenet", "--data-root", str(photos), "--batch-size", "8",
                                      "--batches", "1", "--steps", "1", "--workers", "0", "--device", "cpu",
                                      "--image-size", "32", "--teacher", "imagenet_resnet18", "--amp"])
    steps = bench_imagenet.training_steps(args, torch.device("cpu"))
    kd, unix = (steps[what][0] for what in (bench_imagenet.KD, bench_imagenet.UNIX))
    assert kd.cfg.conventional_kd and (unix.cfg.k, unix.cfg.b, unix.cfg.w, unix.cfg.strategy) == (6, 4, 10.0, 3)
    bench_imagenet.main(["--dataset", "imagenet", "--data-root", str(photos), "--batch-size", "8", "--batches", "1",
                         "--steps", "1", "--workers", "0", "--device", "cpu", "--image-size", "32",
                         "--teacher", "imagenet_resnet18", "--amp"])
    out = capsys.readouterr().out
    assert "steps in bf16 autocast" in out and amps and all(amps)
    assert re.search(r"UNIXKD / KD per batch: wall time [0-9.]+, FLOPs [0-9.]+", out)


def test_dali_builds_each_splits_pipeline_once_a_run_and_resets_it_each_pass(photos, monkeypatch):
    """DALI's GPU decoder set-up is paid once: two epochs and two validation passes, one pipeline each."""
    pytest.importorskip("nvidia.dali")
    from utils.data.dali import DaliLoader

    built, original = [], DaliLoader._pipeline
    monkeypatch.setattr(DaliLoader, "_pipeline", lambda self, *args: built.append(self.train) or original(self, *args))
    train, val = loader("dali", photos / "train", True), loader("dali", photos / "val", False)
    for _ in range(2):
        assert epoch(train) and epoch(val)
    assert sorted(built) == [False, True]
    # The dynamic executor, set rather than left to DALI's default: validation reads a GPU node's shape on the CPU.
    assert all(pipe.pipe.exec_dynamic for data in (train, val) for pipe in data._pipes.values())


def test_batch_plans_reach_a_cuda_device_pinned_and_without_waiting(photos, monkeypatch):
    """A copy from pageable memory makes the host wait for the GPU's queue (the previous step) on every batch."""
    from utils.data import loader as loader_module

    calls = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: calls.append("pinned") or self.clone())
    monkeypatch.setattr(torch.Tensor, "to", lambda self, device, non_blocking=False: calls.append((str(device), non_blocking)) or self)
    loader_module.host_to_device([3, 1, 2], torch.device("cuda", 0))
    assert calls == ["pinned", ("cuda:0", True)]
    monkeypatch.undo()
    pytest.importorskip("nvidia.dali")
    from utils.data import dali

    copied = []
    monkeypatch.setattr(dali, "host_to_device", lambda values, device: copied.append(list(values)) or torch.tensor(values))
    data = loader("dali", photos / "train", True, batch=5)
    assert [idx.tolist() for _, _, idx in epoch(data)] == copied and len(copied) == len(data)


def test_dali_validation_truncates_the_longer_side_as_torchvision_does(tmp_path):
    """640 x 427 resized to a shorter side of 256: torchvision makes it 383 x 256 (int(383.7)); DALI's own
    resize_shorter rounds to 384, a 0.26 % larger scale that moved the 224 crop's pixels (3.6/255 on average
    on this photograph, at most 135/255; now 0.15/255, at most 1/255)."""
    pytest.importorskip("nvidia.dali")
    from matplotlib import cbook

    (tmp_path / "c0").mkdir()
    photo = Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB").resize((640, 427), Image.BILINEAR)
    photo.save(tmp_path / "c0" / "photo.png")  # lossless: the decoders agree, only the geometry is compared
    x, _, _ = epoch(loader("dali", tmp_path, False, size=224))[0]
    reference = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.PILToTensor()])(photo)
    difference = ((x[0] * STD[0] + MEAN[0]) * 255 - reference).abs()
    assert difference.mean() < 0.5 and difference.max() <= 1 + 1e-3


class FailsWhenRead:
    """A batch whose failure shows when its output is read, as DALI's dynamic executor may report a GPU operator's."""

    def as_tensor(self):
        raise RuntimeError("stand-in: nvJPEG cannot decode it")


@pytest.mark.parametrize("when", ["run", "read"])
def test_a_file_the_gpu_decoder_rejects_is_decoded_on_the_cpu(photos, monkeypatch, when):
    """On a CPU, a stand-in for the mixed decoder: DALI's CPU pipeline, failing as nvJPEG would on one file that
    the CPU decoder reads, when the batch runs or when its output is read. The epoch comes out whole, every batch
    as the plain CPU pipeline gives it (the same random states, so the same crops), and the file's later
    batches go to the CPU pipeline directly."""
    pytest.importorskip("nvidia.dali")
    from utils.data import dali

    rejected = str(sorted((photos / "train").rglob("*.JPEG"))[3])

    class RejectingGpuDecoder(dali.DecodingPipeline):
        runs = []

        def __init__(self, build, decoder, batch_size, stream):
            super().__init__(build, "cpu", batch_size, stream)
            self.decoder = decoder

        def next(self):
            self.runs.append(self.decoder)
            if not (self.decoder == "mixed" and rejected in self.pending[0].paths):
                return super().next()
            if when == "run":
                raise RuntimeError("stand-in: nvJPEG cannot decode it")
            super().next()
            return FailsWhenRead()

    plain = loader("dali", photos / "train", True, batch=4)
    expected = [epoch(plain), epoch(plain)]
    monkeypatch.setattr(dali, "DecodingPipeline", RejectingGpuDecoder)
    data = loader("dali", photos / "train", True, batch=4)
    data.decoder = "mixed"
    assert same_batches(epoch(data), expected[0])
    assert data.cpu_only == {data.dataset.samples.index((rejected, data.dataset.class_to_idx[Path(rejected).parent.name]))}
    RejectingGpuDecoder.runs.clear()
    assert same_batches(epoch(data), expected[1])
    assert RejectingGpuDecoder.runs.count("cpu") == 1  # the file's one batch, and no failure on the GPU first


def test_the_mixed_decoder_upsamples_chroma_as_the_cpu_one_and_preallocates_for_imagenets_largest_image(photos, monkeypatch):
    """On a CPU, DALI's decoders wrapped: a call for the mixed decoder has its keywords recorded and is built on the
    CPU. Training's, validation's and the lone-file probe's mixed decoder each get the options."""
    pytest.importorskip("nvidia.dali")
    import nvidia.dali.fn as fn

    calls = []

    def recorded(name, decode):
        def on_the_cpu(*args, device, **kwargs):
            calls.append((name, device, {key: value for key, value in kwargs.items() if "upsampling" in key or "hint" in key}))
            return decode(*args, device="cpu", **kwargs)
        return on_the_cpu

    for name in ("image", "image_random_crop"):
        monkeypatch.setattr(fn.decoders, name, recorded(name, getattr(fn.decoders, name)))
    for split, train in (("train", True), ("val", False)):
        data = loader("dali", photos / split, train)
        data.decoder = "mixed"
        assert epoch(data) and data._cannot_decode(data.dataset.samples[0][0], "mixed") is None
    # DALI's ResNet-50 example: NVIDIA/DALI docs/examples/use_cases/pytorch/resnet50/main.py at 6f89a6d.
    options = {"jpeg_fancy_upsampling": True, "preallocate_width_hint": 5980, "preallocate_height_hint": 6430}
    assert calls == [("image_random_crop", "mixed", options), ("image", "mixed", options),  # training, its probe
                     ("image", "mixed", options), ("image", "mixed", options)]  # validation, its probe


@pytest.mark.parametrize("operator", ["decoders__ImageRandomCrop", "random__CoinFlip"])
def test_a_dali_without_per_batch_random_states_is_refused_in_one_line(operator, monkeypatch):
    pytest.importorskip("nvidia.dali")
    import nvidia.dali as nvidia_dali

    from utils.data.dali import import_dali
    from utils.errors import UserError

    class OlderSchema:
        pass

    schema = nvidia_dali.backend.GetSchema
    monkeypatch.setattr(nvidia_dali.backend, "GetSchema",
                        lambda name, **kwargs: OlderSchema() if name == operator else schema(name, **kwargs))
    with pytest.raises(UserError, match=rf"random state per batch \(2\.4 has it; this is .*, whose {operator} does not\): pip"):
        import_dali()


def test_a_dali_taking_random_states_of_another_size_is_one_line(photos, monkeypatch):
    """DALI's ValueError for an input it refuses, unlike its RuntimeError for a file it cannot read, is no file's
    fault: one line naming the DALI, not a traceback (nor a search for a bad file)."""
    pytest.importorskip("nvidia.dali")
    from utils.data import dali
    from utils.errors import UserError

    monkeypatch.setattr(dali, "STATE_WORDS", 6)  # one word short of what DALI 2.4 draws from
    with pytest.raises(UserError, match=r"^DALI 2\.4\.\d+ refused what the loader feeds its pipeline \(a training "
                                        r"batch's random states: 6 words each, as DALI 2\.4 takes them\): Random state "
                                        r"tensor is too small; --loader dali is tested with DALI 2\.4: pip install"):
        epoch(loader("dali", photos / "train", True))


def test_the_loader_benchmark_counts_the_cpu_time_of_worker_processes():
    """torchvision decodes in worker processes: their CPU seconds are the loader's too (DALI's threads are this
    process's own)."""
    from utils.tools.bench_imagenet import cpu_seconds

    spin = "import time\ninput()\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\nprint('done', flush=True)\ninput()"
    worker = subprocess.Popen([sys.executable, "-c", spin], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        before, mine = cpu_seconds(), time.process_time()
        worker.stdin.write("go\n")
        worker.stdin.flush()
        assert worker.stdout.readline() == "done\n"  # the worker has spun for 0.3 CPU-seconds
        assert cpu_seconds() - before - (time.process_time() - mine) > 0.25
    finally:
        worker.kill()


def test_the_loader_benchmark_counts_a_whole_pass_of_work_however_far_ahead_the_loader_decodes():
    """A loader that does a whole pass's work before it hands its first batch over (as workers decoding ahead
    do, 4 batches each): its CPU-seconds are the pass's, not those left after its first batch."""
    from utils.tools.bench_imagenet import pass_rate

    class WorkAhead:
        def plans(self):
            end = time.process_time() + 0.2  # the pass's 32 images, 160 per CPU-second
            while time.process_time() < end:
                pass
            yield from (torch.arange(8) for _ in range(4))

    rate = pass_rate(WorkAhead(), torch.device("cpu"))
    assert 120 < rate.per_cpu_second <= 160
