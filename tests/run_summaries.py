"""What run folders hold, written by hand for the results table's and the plot's tests: summary.json as
student_v0.py and teacher.py write it (the parts the table reads)."""
import json

KD_ARGS = {"strategy": 0, "k": 64, "b": 64, "w": 1000.0, "batch_size": 64, "mix_strategy": 2, "other_distill": None}
UNIX_ARGS = {"strategy": 3, "k": 48, "b": 32, "w": 10.0, "batch_size": 64, "mix_strategy": 2, "other_distill": None}
UNIX = "UNIXKD (S3 k48 b32 w10)"
ABLATION_ARGS = {**UNIX_ARGS, "mix_strategy": 0}


def summary_json(args, seed, best_acc, computation, epochs_done=240):
    return {
        "args": {**args, "teacher_path": "experiments/teacher_resnet32x4/ckpt/best.pth", "student_arch": "resnet8x4",
                 "seed": seed, "epoch": 240, "lr": 0.05},
        "teacher_arch": "resnet32x4",
        "student_arch": "resnet8x4",
        "teacher_acc": 79.4,
        "best_acc": best_acc,
        "last_acc": best_acc - 0.2,
        "epochs_done": epochs_done,
        "finished": epochs_done == 240,
        "wall_seconds": 1234.5,
        "images_per_second": 9876.0,
        "computation": {"computation": computation},
        "flops": {"teacher": 612, "student": 100},
    }


def teacher_json(arch, seed, best_acc, epochs_done=240):
    """What teacher.py writes (utils.runs.report.TeacherReport)."""
    return {"arch": arch, "args": {"arch": arch, "seed": seed, "epoch": 240, "lr": 0.05}, "best_acc": best_acc,
            "last_acc": best_acc - 0.1, "epochs_done": epochs_done, "finished": epochs_done == 240,
            "wall_seconds": 100.0, "images_per_second": 5000.0}


def write_runs(root, runs):
    for name, content in runs.items():
        (root / name).mkdir()
        (root / name / "summary.json").write_text(json.dumps(content))


# KD as docs/imagenet.md runs it on 8 GPUs: every image of each GPU's 32.
IMAGENET_ARGS = {**KD_ARGS, "dataset": "imagenet", "epoch": 100, "batch_size": 256, "local_batch": 32, "k": 32,
                 "b": 32, "w": 1000.0, "momentum": 0.9, "weight_decay": 1e-4, "gamma": 0.1, "milestones": [30, 60, 90],
                 "amp": False, "lr": 0.1, "image_size": 224, "student_arch": "imagenet_resnet18"}


def imagenet_json(seed, kind="imagenet", train_images=1_281_167):
    content = {**summary_json(KD_ARGS, seed, 70.0 + seed, 100.0), "teacher_arch": "imagenet_resnet34",
               "student_arch": "imagenet_resnet18", "data": {"kind": kind, "train_images": train_images,
                                                              "test_images": 50_000}}
    content["args"] = {**IMAGENET_ARGS, "seed": seed, "teacher_path": "torchvision:resnet34:IMAGENET1K_V1"}
    content["epochs_done"] = 100
    return content


def imagenet_unix(seed, k, b, batch_size, world_size=8):
    """UNIXKD on ImageNet with --k and --b of each process's batch (batch_size / world_size), lr 0.1 per 256 images."""
    content = imagenet_json(seed)
    content["args"].update(UNIX_ARGS, batch_size=batch_size, lr=0.1 * batch_size / 256, k=k, b=b)
    del content["args"]["local_batch"]  # recorded beside the args today
    return {**content, "batch_per_process": batch_size // world_size, "world_size": world_size}
