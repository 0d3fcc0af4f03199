"""--loader dali: NVIDIA DALI reads, decodes, crops, flips and normalises the batches, on the GPU where there is one.

Each rank's share of a split and its order are the default loader's (utils.data.shares.rank_indices:
the same images per rank and epoch, the same padding); DALI gets each batch as a list of file paths.
Training: decoders.image_random_crop (the protocol's area and aspect-ratio ranges, 10 tries; decoding
only the crop), resize to the image size, and crop_mirror_normalize flipping half the images; validation:
the shorter side resized to size x 256/224, the centre crop. With CUDA the decoder runs on the `mixed`
device (nvJPEG and the GPU's JPEG engines) and the rest on the GPU; without it the same pipeline runs on
DALI's CPU backend, which is how the tests run it.

Each epoch gets a new pipeline seeded from (seed, epoch, rank): the draws are a function of those, so a
resumed run replays the following epochs exactly without DALI's reader checkpoints (the trainer resumes
at epoch boundaries only). DALI has no per-file error handling: a batch holding a file it cannot decode
fails as a whole, so the loader tries that batch's files one by one on DALI's CPU decoder, skips the
unreadable ones (utils.data.unreadable) and runs the batch again without them in a new pipeline.
"""
import numpy as np
import torch

from utils.data.imagenet_recipe import ATTEMPTS, IMAGENET_MEAN, IMAGENET_STD, RATIO, RESIZE_RATIO, SCALE
from utils.data.shares import rank_indices
from utils.data.unreadable import UnreadableImages, stand_in
from utils.errors import UserError
from utils.process import distributed

INSTALL = "pip install nvidia-dali-cuda130"


def import_dali():
    try:
        import nvidia.dali as dali
        import nvidia.dali.plugin.pytorch as dali_torch
    except ImportError:
        raise UserError(f"--loader dali needs NVIDIA DALI, an optional dependency: {INSTALL} "
                        "(CUDA 13 builds, as torch's; its CPU backend runs without a GPU)") from None
    return dali, dali_torch


def encoded(paths) -> list:
    """File paths as DALI's fn.io.file.read takes them: one uint8 array of the UTF-8 bytes each."""
    return [np.frombuffer(path.encode(), dtype=np.uint8) for path in paths]


class DaliLoader:
    """One rank's share of a split through a DALI pipeline, in the trainer's plans()/assemble() interface."""

    def __init__(self, dataset, local_batch: int, device, seed: int, threads: int, channels_last: bool = True):
        self.dali, self.dali_torch = import_dali()
        self.dataset, self.device, self.train = dataset, torch.device(device), dataset.train
        self.local_batch, self.seed, self.threads = local_batch, seed, max(1, threads)
        self.num_samples = len(dataset)
        self.channels_last = channels_last
        self.indices = rank_indices(len(dataset), self.train, seed)
        self.unreadable = UnreadableImages("train" if self.train else "val")
        self.bad = {}  # index: (path, reason) of the files DALI could not read
        self.labels = torch.tensor(dataset.targets, device=self.device)
        self.epoch, self._images = 0, None

    def __len__(self) -> int:
        return -(-len(self.indices) // self.local_batch)

    def plans(self, first_batch: int = 0):
        """The epoch's batches from batch `first_batch` on. DALI draws each crop from its pipeline's one
        random stream, in order: the batches before `first_batch` are decoded again (not trained on), so the
        rest come out as they would have."""
        epoch = self.epoch
        if self.train:
            self.indices.set_epoch(epoch)
            self.epoch += 1
        batches, done = self._batches(), 0
        while done < len(batches):
            pipe = self._pipeline(batches[done:], self._seed(epoch, done))
            for images in self._outputs(pipe, batches, done):
                if done >= first_batch:
                    self._images = images
                    yield torch.tensor(batches[done], device=self.device)
                done += 1
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
        bad = self._undecodable([path])
        if bad:
            self.bad[index] = (path, bad[path])
            return None
        return index

    def assemble(self, plan: torch.Tensor):
        """The batch plans() last yielded: normalised by DALI, (N, H, W, C) seen as channels-last NCHW."""
        x = self._images.permute(0, 3, 1, 2)
        return (x if self.channels_last else x.contiguous()), self.labels[plan], plan

    def state_dict(self) -> dict:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]

    def _seed(self, epoch: int, first_batch: int) -> int:
        """The seed of the pipeline that starts the epoch (first_batch 0) or restarts it after a bad file."""
        key = [self.seed, epoch, distributed.rank(), first_batch]
        return int(np.random.SeedSequence(key).generate_state(1)[0]) % 2**31

    def _outputs(self, pipe, batches, done):
        """The pipeline's batches as torch tensors; a batch that fails loses its unreadable files and ends the pipeline."""
        for _ in range(len(batches) - done):
            try:
                (images,) = pipe.run()
            except RuntimeError as exc:
                self._drop_unreadable(batches, done, exc)
                return
            yield self._to_torch(images)
            done += 1

    def _drop_unreadable(self, batches, failed: int, error: RuntimeError) -> None:
        paths = {self.dataset.samples[index][0]: index for index in batches[failed]}
        bad = self._undecodable(paths)
        if not bad:
            raise error
        self.bad.update((paths[path], (path, reason)) for path, reason in bad.items())
        kept = self._readable(batches[failed])
        if kept:
            batches[failed] = kept
        else:  # a validation batch left empty
            del batches[failed]

    def _undecodable(self, paths) -> dict:
        """{path: reason} of the files DALI's CPU decoder cannot read, tried one at a time."""
        bad, probe = {}, None
        for path in paths:
            probe = probe or self._probe()
            probe.feed_input("path", encoded([path]))
            try:
                probe.run()
            except RuntimeError as exc:
                bad[path], probe = dali_reason(exc), None  # a failed pipeline is not run again
        return bad

    def _probe(self):
        fn, types = self.dali.fn, self.dali.types

        @self.dali.pipeline_def(batch_size=1, num_threads=1, device_id=None, prefetch_queue_depth=1)
        def probe():
            return fn.decoders.image(fn.io.file.read(fn.external_source(name="path")), device="cpu",
                                     output_type=types.RGB)

        pipe = probe()
        pipe.build()
        return pipe

    def _pipeline(self, batches, seed: int):
        dali, fn, types = self.dali, self.dali.fn, self.dali.types
        cuda = self.device.type == "cuda"
        device_id = None if not cuda else torch.cuda.current_device() if self.device.index is None else self.device.index
        decoder, ops = ("mixed", "gpu") if cuda else ("cpu", "cpu")
        size = self.dataset.image_size
        paths = [[self.dataset.samples[index][0] for index in batch] for batch in batches]

        def source():
            yield from (encoded(batch) for batch in paths)

        @dali.pipeline_def(batch_size=self.local_batch, num_threads=self.threads, device_id=device_id, seed=seed)
        def pipeline():
            files = fn.io.file.read(fn.external_source(source=source, batch=True, cycle=False))
            if self.train:
                images = fn.decoders.image_random_crop(files, device=decoder, output_type=types.RGB,
                                                       random_area=list(SCALE), random_aspect_ratio=list(RATIO),
                                                       num_attempts=ATTEMPTS)
                images = fn.resize(images, device=ops, size=[size, size], interp_type=types.INTERP_LINEAR,
                                   antialias=True)
                mirror, crop = fn.random.coin_flip(probability=0.5), {}
            else:
                images = fn.decoders.image(files, device=decoder, output_type=types.RGB)
                images = fn.resize(images, device=ops, resize_shorter=round(size * RESIZE_RATIO),
                                   interp_type=types.INTERP_LINEAR, antialias=True, subpixel_scale=False)
                shape = images.shape(dtype=types.INT32)
                mirror, crop = 0, {"crop": [size, size], "crop_pos_y": centre(dali.math, shape[0], size),
                                   "crop_pos_x": centre(dali.math, shape[1], size)}
            return fn.crop_mirror_normalize(images, device=ops, dtype=types.FLOAT, output_layout="HWC", mirror=mirror,
                                            mean=[255 * m for m in IMAGENET_MEAN], std=[255 * s for s in IMAGENET_STD],
                                            **crop)

        pipe = pipeline()
        pipe.build()
        return pipe

    def _to_torch(self, images) -> torch.Tensor:
        dense = images.as_tensor()
        out = torch.empty(dense.shape(), dtype=torch.float32, device=self.device)
        stream = torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None
        self.dali_torch.feed_ndarray(dense, out, cuda_stream=stream)
        return out


def centre(math, length, crop: int):
    """crop_pos putting the crop where torchvision's CenterCrop does: at round((length - crop) / 2), halves to
    even (DALI's own 0.5 rounds halves up: one pixel off for an odd margin). length: a DALI data node;
    math: nvidia.dali.math."""
    margin = length - crop
    half = margin // 2
    return (half + margin % 2 * (half % 2)) / math.max(margin, 1)


def dali_reason(error: RuntimeError) -> str:
    """DALI's error in a few words: the line after 'encountered:', or its last line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    after = lines[lines.index("encountered:") + 1:] if "encountered:" in lines else lines[-1:]
    return (after or ["DALI cannot decode it"])[0]
