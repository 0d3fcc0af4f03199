"""--loader dali: NVIDIA DALI reads, decodes, crops, flips and normalises the batches, on the GPU where there is one.

Each rank's share of a split and its order are the default loader's (utils.data.shares.rank_indices:
the same images per rank and epoch, the same padding); DALI gets each batch as a list of file paths.
Training: decoders.image_random_crop (the protocol's area and aspect-ratio ranges, 10 tries; decoding
only the crop), resize to the image size, and crop_mirror_normalize flipping half the images; validation:
the shorter side resized to size x 256/224 and the longer one truncated, as torchvision's Resize does, then
the centre crop. With CUDA the decoder runs on the `mixed` device (nvJPEG and the GPU's JPEG engines) and
the rest on the GPU; without it the same pipeline runs on DALI's CPU backend, which is how the tests run it.

One pipeline per split and run, built at its first pass and reset at the end of each (as DALI's own
iterators do). Each batch comes with two random states, for its crops and its flips, derived from (seed,
epoch, rank, batch): the draws are a function of those alone, so a resumed run replays the following epochs
exactly without DALI's reader checkpoints, and one resumed mid-epoch starts at its next batch without
decoding the ones before. DALI takes them through `_random_state`, the argument its own dynamic mode feeds
its random operators; it is not in DALI's documented pipeline API, so the loader checks at start that the
installed DALI has it (2.4 is the version tested) and refuses one without it in one line.

DALI has no per-file error handling: a batch holding a file it cannot decode fails as a whole, and its
pipeline with it. The loader then tries the batch's files one at a time: one DALI's CPU decoder cannot read
is skipped (utils.data.unreadable); one only the GPU decoder rejects is decoded on the CPU from then on (its
batches go through a second pipeline, its decoder on the CPU, with the same random states: the same crops).
The rest of the pass runs on new pipelines.
"""
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from utils.data.imagenet_recipe import ATTEMPTS, IMAGENET_MEAN, IMAGENET_STD, RATIO, RESIZE_RATIO, SCALE
from utils.data.loader import host_to_device
from utils.data.shares import rank_indices
from utils.data.unreadable import UnreadableImages, stand_in
from utils.errors import UserError
from utils.process import distributed

INSTALL = "pip install nvidia-dali-cuda130"
TESTED_DALI = "2.4"
STATE_WORDS = 7  # a random state as DALI's random operators take it: 7 uint32 words (DALI's dynamic mode draws as many)
CROPS, FLIPS = 0, 1  # the two draws of a training batch, each from its own state
RANDOM_OPERATORS = ("decoders__ImageRandomCrop", "random__CoinFlip")  # DALI's schemas of the operators that draw them
# The mixed decoder's options. Fancy upsampling: nvJPEG's default chroma upsampling differs from libjpeg-turbo's,
# which PIL and DALI's CPU decoder use. The hints: the largest image of ImageNet, so that the hardware decoder
# allocates once rather than regrowing its buffers (DALI's ResNet-50 example, NVIDIA/DALI
# docs/examples/use_cases/pytorch/resnet50/main.py at 6f89a6d).
MIXED_DECODER = {"jpeg_fancy_upsampling": True, "preallocate_width_hint": 5980, "preallocate_height_hint": 6430}


def import_dali():
    try:
        import nvidia.dali as dali
        import nvidia.dali.plugin.pytorch as dali_torch
    except ImportError:
        raise UserError(f"--loader dali needs NVIDIA DALI, an optional dependency: {INSTALL} "
                        "(CUDA 13 builds, as torch's; its CPU backend runs without a GPU)") from None
    for operator in RANDOM_OPERATORS:
        if not getattr(dali.backend.GetSchema(operator), "HasRandomStateArg", lambda: False)():
            raise UserError(f"--loader dali needs a DALI whose random operators take a random state per batch "
                            f"({TESTED_DALI} has it; this is {dali.__version__}, whose {operator} does not): {INSTALL}")
    return dali, dali_torch


def decoder_options(decoder: str) -> dict:
    """The keywords a decoder of `decoder`'s device takes beside the defaults: the mixed one's (MIXED_DECODER)."""
    return MIXED_DECODER if decoder == "mixed" else {}


def encoded(paths) -> list:
    """File paths as DALI's fn.io.file.read takes them: one uint8 array of the UTF-8 bytes each."""
    return [np.frombuffer(path.encode(), dtype=np.uint8) for path in paths]


def random_state(key: list) -> np.ndarray:
    return np.random.SeedSequence(key).generate_state(STATE_WORDS).astype(np.uint32)


@dataclass
class BatchInputs:
    """What a pipeline pulls for one batch: its files, and the random states of its crops and flips."""
    paths: list
    states: tuple

    def as_dali(self) -> tuple:
        n = len(self.paths)
        return (encoded(self.paths), *([state] * n for state in self.states))


class DecodingPipeline:
    """A built DALI pipeline run pass after pass: start() gives it a pass's batches, which it pulls one at a
    time (a few ahead), next() returns them in order, finish() readies it for the next pass."""

    def __init__(self, build, decoder: str, batch_size: int, cuda_stream):
        self.decoder, self.cuda_stream = decoder, cuda_stream
        self.pending = deque()  # the BatchInputs not yet returned, in order
        self._queue = iter(())
        self.pipe = build(decoder, batch_size, self._pull)

    def _pull(self):
        return next(self._queue).as_dali()  # StopIteration ends DALI's pass

    def start(self, inputs: list) -> None:
        self.pending.extend(inputs)
        self._queue = iter(inputs)

    def next(self):
        """The next batch's images (DALI's TensorList), bound to `cuda_stream` (None: host-synchronous)."""
        (images,) = self.pipe.run(self.cuda_stream)
        self.pending.popleft()
        return images

    def finish(self) -> None:
        self.pipe.reset()


class DaliLoader:
    """One rank's share of a split through DALI pipelines, in the trainer's plans()/assemble() interface."""

    def __init__(self, dataset, local_batch: int, device, seed: int, threads: int, channels_last: bool = True):
        self.dali, self.dali_torch = import_dali()
        self.dataset, self.device, self.train = dataset, torch.device(device), dataset.train
        self.local_batch, self.seed, self.threads = local_batch, seed, max(1, threads)
        self.num_samples = len(dataset)
        self.channels_last = channels_last
        self.indices = rank_indices(len(dataset), self.train, seed)
        self.unreadable = UnreadableImages("train" if self.train else "val")
        self.bad = {}  # index: (path, reason) of the files DALI could not read
        self.decoder = "mixed" if self.device.type == "cuda" else "cpu"
        self.cpu_only = set()  # indices of the files the GPU decoder rejects and the CPU decoder reads
        self.cuda_stream = torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None
        self._pipes, self._probes = {}, {}  # decoder: DecodingPipeline, each built once and kept
        self.labels = torch.tensor(dataset.targets, device=self.device)
        self.epoch, self._images = 0, None

    def __len__(self) -> int:
        return -(-len(self.indices) // self.local_batch)

    def plans(self, first_batch: int = 0):
        """The epoch's batches from batch `first_batch` on; the ones before it are not decoded (each batch's draws
        come from its own random states)."""
        epoch = self.epoch
        if self.train:
            self.indices.set_epoch(epoch)
            self.epoch += 1
        batches, done, finished = self._batches(), first_batch, False
        try:
            while done < len(batches):
                for images in self._decoded(batches, done, epoch):
                    self._images = images
                    yield host_to_device(batches[done], self.device)
                    done += 1
            finished = True
        finally:
            self._end_pass(finished)
        self.unreadable.end_pass()

    def _batches(self) -> list:
        """The epoch's batches of indices, less the files already found unreadable (counted again, not tried again)."""
        order = list(self.indices)
        batches = (self._readable(order[start:start + self.local_batch]) for start in range(0, len(order), self.local_batch))
        return [batch for batch in batches if batch]

    def _readable(self, batch: list) -> list:
        """The batch less its known unreadable files, each counted in this pass. Left empty, a training batch takes
        a stand-in (utils.data.unreadable.stand_in) and a validation batch is dropped ([])."""
        for index in sorted(self.bad.keys() & set(batch)):
            self.unreadable.skip(*self.bad[index])
        kept = [index for index in batch if index not in self.bad]
        if kept or not self.train:
            return kept
        return [stand_in(batch[0], len(self.dataset), self._decodable)]

    def _decodable(self, index: int):
        """index if DALI decodes its file, else None (an unreadable one is noted, not counted in this pass)."""
        if index in self.bad:
            return None
        path = self.dataset.samples[index][0]
        reason = self._cannot_decode(path, "cpu")
        if reason:
            self.bad[index] = (path, reason)
            return None
        return index

    def _decoded(self, batches: list, first: int, epoch: int):
        """Batches `first`.. as torch tensors, each from the pipeline of its decoder; a batch that fails has its
        files sorted out (_recover) and ends the generator, the pipelines dropped."""
        route = ["cpu" if self.cpu_only & set(batch) else self.decoder for batch in batches]
        for decoder in set(route[first:]):
            self._pipe(decoder).start([self._inputs(batches[number], epoch, number)
                                       for number in range(first, len(batches)) if route[number] == decoder])
        for number in range(first, len(batches)):
            try:  # the copy too: the dynamic executor may report a GPU operator's failure when its output is read
                images = self._to_torch(self._pipes[route[number]].next())
            except RuntimeError as error:  # how DALI fails on a file it cannot read, among other things
                self._pipes.clear()  # a pipeline that failed does not run again; the others are mid-pass
                self._recover(batches, number, route[number], error)
                return
            except ValueError as error:  # how DALI refuses an input: the random states, no file's fault
                raise UserError(refused_input(self.dali, error)) from None
            yield images

    def _inputs(self, batch: list, epoch: int, number: int) -> BatchInputs:
        key = [self.seed, epoch, distributed.rank(), number]
        states = (random_state(key + [CROPS]), random_state(key + [FLIPS])) if self.train else ()
        return BatchInputs([self.dataset.samples[index][0] for index in batch], states)

    def _pipe(self, decoder: str) -> DecodingPipeline:
        if decoder not in self._pipes:
            self._pipes[decoder] = DecodingPipeline(self._pipeline, decoder, self.local_batch, self.cuda_stream)
        return self._pipes[decoder]

    def _end_pass(self, finished: bool) -> None:
        """Ready the pipelines for the next pass; a pass left before its end leaves them mid-pass: dropped."""
        for pipe in self._pipes.values():
            pipe.finish()
        if not finished:
            self._pipes.clear()

    def _recover(self, batches: list, failed: int, decoder: str, error: RuntimeError) -> None:
        """After `decoder`'s pipeline failed on batch `failed`: its files no decoder reads are skipped, those the
        GPU decoder alone rejects go to the CPU decoder; a failure neither explains is raised again."""
        paths = {self.dataset.samples[index][0]: index for index in batches[failed]}
        unreadable = {path: reason for path in paths if (reason := self._cannot_decode(path, "cpu"))}
        rejected = set()
        if not unreadable and decoder != "cpu":
            rejected = {paths[path] for path in paths if self._cannot_decode(path, decoder)}
        if not unreadable and not rejected:
            raise error
        self.bad.update((paths[path], (path, reason)) for path, reason in unreadable.items())
        self.cpu_only |= rejected
        kept = self._readable(batches[failed])
        if kept:
            batches[failed] = kept
        else:  # a validation batch left empty
            del batches[failed]

    def _cannot_decode(self, path: str, decoder: str):
        """Why `decoder` cannot decode the file (DALI's words), or None where it can."""
        probe = self._probes.pop(decoder, None) or DecodingPipeline(self._probe_pipeline, decoder, 1, self.cuda_stream)
        probe.start([BatchInputs([path], ())])
        try:
            probe.next().as_tensor()  # read as a batch is (_to_torch): a failure may show only there
        except RuntimeError as exc:
            return dali_reason(exc)  # a failed pipeline is not run again
        probe.finish()
        self._probes[decoder] = probe
        return None

    def assemble(self, plan: torch.Tensor):
        """The batch plans() last yielded: normalised by DALI, (N, H, W, C) seen as channels-last NCHW."""
        x = self._images.permute(0, 3, 1, 2)
        return (x if self.channels_last else x.contiguous()), self.labels[plan], plan

    def state_dict(self) -> dict:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]

    def _pipeline_def(self, batch_size: int):
        # The dynamic executor, explicitly: validation reads a GPU node's shape on the CPU, and run() returns
        # batches bound to torch's stream rather than waiting for them (it is DALI 2.4's default anyway).
        return self.dali.pipeline_def(batch_size=batch_size, num_threads=self.threads, device_id=self.device.index,
                                      exec_dynamic=True, seed=self.seed)

    def _pipeline(self, decoder: str, batch_size: int, source):
        fn, types = self.dali.fn, self.dali.types
        ops = "gpu" if self.device.type == "cuda" else "cpu"
        size, options = self.dataset.image_size, decoder_options(decoder)

        @self._pipeline_def(batch_size)
        def pipeline():
            paths, *states = external_source(self.dali, source, states=2 if self.train else 0)
            files = fn.io.file.read(paths)
            if self.train:
                crops, flips = states
                images = fn.decoders.image_random_crop(files, device=decoder, output_type=types.RGB,
                                                       random_area=list(SCALE), random_aspect_ratio=list(RATIO),
                                                       num_attempts=ATTEMPTS, _random_state=crops, **options)
                images = fn.resize(images, device=ops, size=[size, size], interp_type=types.INTERP_LINEAR,
                                   antialias=True)
                mirror, crop = fn.random.coin_flip(probability=0.5, _random_state=flips), {}
            else:
                images = fn.decoders.image(files, device=decoder, output_type=types.RGB, **options)
                images = fn.resize(images, device=ops, size=resized_like_torchvision(self.dali, images, size),
                                   interp_type=types.INTERP_LINEAR, antialias=True)
                shape = images.shape(dtype=types.INT32)
                mirror, crop = 0, {"crop": [size, size], "crop_pos_y": centre(self.dali.math, shape[0], size),
                                   "crop_pos_x": centre(self.dali.math, shape[1], size)}
            return fn.crop_mirror_normalize(images, device=ops, dtype=types.FLOAT, output_layout="HWC", mirror=mirror,
                                            mean=[255 * m for m in IMAGENET_MEAN], std=[255 * s for s in IMAGENET_STD],
                                            **crop)

        pipe = pipeline()
        pipe.build()
        return pipe

    def _probe_pipeline(self, decoder: str, batch_size: int, source):
        """The whole file decoded by `decoder`, nothing else: whether it can be read at all."""
        fn, types = self.dali.fn, self.dali.types

        @self._pipeline_def(batch_size)
        def probe():
            (paths,) = external_source(self.dali, source, states=0)
            return fn.decoders.image(fn.io.file.read(paths), device=decoder, output_type=types.RGB,
                                     **decoder_options(decoder))

        pipe = probe()
        pipe.build()
        return pipe

    def _to_torch(self, images) -> torch.Tensor:
        dense = images.as_tensor()
        out = torch.empty(dense.shape(), dtype=torch.float32, device=self.device)
        self.dali_torch.feed_ndarray(dense, out, cuda_stream=self.cuda_stream)
        return out


def external_source(dali, source, states: int) -> list:
    """The nodes a batch's BatchInputs become: its file paths, then `states` random states."""
    types = dali.types
    return dali.fn.external_source(source=source, num_outputs=1 + states, batch=True,
                                   dtype=[types.UINT8] + [types.UINT32] * states)


def resized_like_torchvision(dali, images, size: int):
    """[height, width] of torchvision's Resize(round(size x 256/224)): the shorter side to that, the longer one
    scaled alike and truncated (DALI's resize_shorter rounds it: 640 x 427 became 384 x 256, not 383 x 256)."""
    shorter = round(size * RESIZE_RATIO)
    shape = images.shape(dtype=dali.types.INT32)
    height, width = shape[0], shape[1]
    short = dali.math.min(height, width)
    return dali.fn.cast(dali.fn.stack(height * shorter // short, width * shorter // short), dtype=dali.types.FLOAT)


def centre(math, length, crop: int):
    """crop_pos putting the crop where torchvision's CenterCrop does: at round((length - crop) / 2), halves to
    even (DALI's own 0.5 rounds halves up: one pixel off for an odd margin). length: a DALI data node;
    math: nvidia.dali.math."""
    margin = length - crop
    half = margin // 2
    return (half + margin % 2 * (half % 2)) / math.max(margin, 1)


def refused_input(dali, error: ValueError) -> str:
    """DALI refusing what the loader feeds every batch (a training batch's random states among it, STATE_WORDS
    words each as DALI 2.4 takes them): another DALI, said in one line."""
    return (f"DALI {dali.__version__} refused what the loader feeds its pipeline (a training batch's random states: "
            f"{STATE_WORDS} words each, as DALI {TESTED_DALI} takes them): {dali_reason(error)}; --loader dali is "
            f"tested with DALI {TESTED_DALI}: {INSTALL}")


def dali_reason(error: Exception) -> str:
    """DALI's error in a few words: the line after 'encountered:', or its last line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    after = lines[lines.index("encountered:") + 1:] if "encountered:" in lines else lines[-1:]
    return (after or ["DALI cannot decode it"])[0]
