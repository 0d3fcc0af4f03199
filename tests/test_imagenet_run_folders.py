"""An ImageNet run's folder and its --resume on another number of processes, in one process (the number of
processes told by WORLD_SIZE): the folder's name holds neither the batch nor the process count, a bare
--resume continues with the run's own batch, k and b, a student is refused on another count with the counts
summary.json recorded, a teacher on a count its batch cannot feed, and folders named before still resume."""
import json
from types import SimpleNamespace

import pytest

import student_v0
import teacher
from utils.data.dataset_args import check_resumed_batch
from utils.errors import UserError
from utils.process import distributed
from utils.runs.checkpoint import atomic_save
from utils.runs.earlier_names import student_folder
from utils.runs.resume import check_same_process_count
from utils.runs.rundir import open_run

STUDENT = ["--dataset", "imagenet", "--teacher-path", "torchvision:resnet34", "--student-arch", "imagenet_resnet18"]


def student(*flags):
    """(args, the run's folder name, its teacher as the name gives it, its inputs) as student_v0.main has them."""
    args = student_v0.parse_args([*STUDENT, *flags])
    teacher_arch, weights, name, named_teacher = student_v0.teacher_and_run_name(args)
    return args, name, (teacher_arch, named_teacher), {"teacher_identity": weights.url}


def saved_run(folder, started: dict, **summary):
    """A run folder after its first epoch: last.pth and summary.json (the run's flags and what it recorded)."""
    atomic_save({"epoch": 1}, folder / "ckpt" / "last.pth")
    (folder / "summary.json").write_text(json.dumps({"args": started, **summary}))
    return folder


def started_student(*flags) -> dict:
    """A student's flags as summary.json records them: k and b fixed by the batch."""
    args = student(*flags)[0]
    student_v0.settle_batch(args)
    return vars(args)


def test_a_students_folder_name_holds_neither_the_batch_nor_the_process_count(monkeypatch):
    names = set()
    for world, batch in (("1", "24"), ("1", "256"), ("8", "256"), ("8", "512")):
        monkeypatch.setenv("WORLD_SIZE", world)
        names.add(student("--batch-size", batch)[1])
    assert len(names) == 1 and "_strategy3_k0.75_b0.5_w10_seed0" in names.pop()  # the shares of each batch
    assert "_strategy3_k24_b0.5_w10_" in student("--k", "24")[1]  # a number given is named as given


def test_a_bare_resume_continues_with_the_runs_own_batch_k_and_b(tmp_path, capsys):
    """Started with --batch-size 24 (k 18, b 12): a bare --resume finds that run, not a new one at 256."""
    args, name, _, _ = student("--batch-size", "24", "--experiments-dir", str(tmp_path))
    saved_run(tmp_path / name, started_student("--batch-size", "24"), world_size=1, batch_per_process=24)
    args, name, _, _ = student("--resume", "--experiments-dir", str(tmp_path))
    open_run(tmp_path / name, resume=True, force=False, epochs=args.epoch, args=args,
             same_process_count=True)[0].release()
    student_v0.settle_batch(args, tmp_path / name)
    assert (args.batch_size, args.k, args.b) == (24, 18, 12)
    assert ("--resume: the run's own --batch-size 24, --lr 0.009375, --k 18 (3/4 of 24 per process), --b 12 (1/2 of "
            "24 per process) (flags not given keep the values the run started with)") in capsys.readouterr().out


@pytest.mark.parametrize("summary", [{"args": {"batch_size": 48}, "world_size": 2, "batch_per_process": 24},
                                     {"args": {"batch_size": 48, "local_batch": 24}, "world_size": 2},  # earlier
                                     {"args": {"batch_size": 48, "local_batch": 24}}],  # before world_size was
                         ids=["today", "no-batch-per-process", "no-world-size"])
def test_a_student_is_refused_on_another_process_count_naming_those_recorded(monkeypatch, summary):
    monkeypatch.setenv("WORLD_SIZE", "2")
    check_same_process_count("run", summary, 48)
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(UserError) as refused:
        check_same_process_count("run", summary, 48)
    assert str(refused.value).startswith("run was started on 2 process(es) with 24 images each (--batch-size 48) "
                                         "and would resume on 3 with 16 images each: ")
    monkeypatch.setenv("WORLD_SIZE", "5")
    with pytest.raises(UserError, match=r"would resume on 5 \(which cannot share 48 images evenly\): "):
        check_same_process_count("run", summary, 48)


def test_a_bare_resume_on_more_processes_checks_the_floor_against_the_runs_own_batch(tmp_path, monkeypatch):
    """A teacher started on one process with --batch-size 16 and resumed bare on two would train with 8 images
    per process, which a fresh start refuses (the default batch, 256, would have passed the check)."""
    run = tmp_path / "teacher_imagenet_resnet18"
    started = vars(teacher.parse_args(["--dataset", "imagenet", "--arch", "imagenet_resnet18", "--batch-size", "16"]))
    saved_run(run, started, world_size=1, batch_per_process=16)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(distributed, "start", lambda device_type: None)  # no second process to meet
    with pytest.raises(UserError) as refused:
        teacher.main(["--dataset", "imagenet", "--arch", "imagenet_resnet18", "--experiments-dir", str(tmp_path),
                      "--resume"])
    assert str(refused.value) == (f"{run} was started with --batch-size 16: on 2 processes that leaves 8 images per "
                                  f"process, under the floor of 16 (BatchNorm per GPU: docs/imagenet.md); resume it on "
                                  f"1 process(es), or start it over with --force (or in its own folder with --tag "
                                  f"NAME)")
    assert json.loads((run / "summary.json").read_text())["args"] == started  # nothing written


def earlier_student(experiments, batch: int, world: int):
    """A student folder as the earlier version named it: k and b of each process's batch, in numbers."""
    started = started_student("--batch-size", str(batch))
    local = batch // world
    started.update(k=3 * local // 4, b=local // 2, local_batch=local, default_k_b=True)
    name = student()[1].replace("_k0.75_b0.5_", f"_k{started['k']}_b{started['b']}_")
    return saved_run(experiments / name, started, world_size=world)


def test_a_folder_named_by_the_earlier_version_is_found_by_its_runs_settings(tmp_path, capsys):
    """Folders of another batch or other k and b are not this run's; of two runs, the --batch-size given picks,
    then the number of processes."""
    small = earlier_student(tmp_path, 24, 1)
    given = started_student("--batch-size", "24", "--k", "12", "--b", "6")  # k and b given: another run
    saved_run(tmp_path / small.name.replace("_k18_b12_", "_k12_b6_"), given, world_size=1)
    args, name, teacher_named, inputs = student("--resume")
    assert student_folder(tmp_path / name, args, *teacher_named, inputs) == small
    assert "note: this run's folder is " in capsys.readouterr().out
    args, name, teacher_named, inputs = student()  # a fresh start at 256 images: not that run
    assert student_folder(tmp_path / name, args, *teacher_named, inputs) == tmp_path / name
    large = earlier_student(tmp_path, 256, 1)
    args, name, teacher_named, inputs = student("--resume")
    with pytest.raises(UserError, match=r"2 runs of these settings have folders of other names: .*_k18_b12_.* "
                                        r"\(--batch-size 24 --k 18 --b 12 on 1 process\(es\)\), .*_k192_b128_.*"):
        student_folder(tmp_path / name, args, *teacher_named, inputs)
    earlier_student(tmp_path, 256, 8)  # the same batch on 8 processes: the count this one runs on picks
    args, name, teacher_named, inputs = student("--resume", "--batch-size", "256")
    assert student_folder(tmp_path / name, args, *teacher_named, inputs) == large


def test_a_resume_giving_the_k_and_b_a_run_used_continues_it_in_the_folder_of_its_shares(tmp_path, capsys):
    """Started with the default k and b at 24 images (18 and 12; its folder names them by their shares): a
    --resume giving --k 18 --b 12, which name another folder, continues that run, whatever else it gives."""
    run = saved_run(tmp_path / student()[1], started_student("--batch-size", "24"), world_size=1, batch_per_process=24)
    for flags in (["--k", "18", "--b", "12"], ["--k", "18", "--b", "12", "--batch-size", "24"], ["--k", "18"]):
        args, name, teacher_named, inputs = student("--resume", *flags)
        assert name != run.name and student_folder(tmp_path / name, args, *teacher_named, inputs) == run
    assert capsys.readouterr().out.count(f"note: this run's folder is {run.name} (today's name for it: ") == 3


def test_a_resume_that_would_start_a_new_run_beside_one_of_another_k_b_or_batch_is_refused_naming_it(tmp_path):
    """Started with --batch-size 24 --k 12 --b 6: a bare --resume, or one giving k alone, names a folder of the
    default k or b; neither holds a run, and neither starts one silently beside it. Without --resume a start is
    a new run, and so is a --resume that names k and b both (a sweep through command/imagenet_slurm.sh, which
    always passes --resume)."""
    given = ("--batch-size", "24", "--k", "12", "--b", "6")
    run = saved_run(tmp_path / student(*given)[1], started_student(*given), world_size=1, batch_per_process=24)
    for flags in ([], ["--k", "16"]):
        args, name, teacher_named, inputs = student("--resume", *flags)
        with pytest.raises(UserError) as refused:
            student_folder(tmp_path / name, args, *teacher_named, inputs)
        assert str(refused.value) == (
            f"--resume finds no run in {tmp_path / name}, and 1 run(s) of this student, teacher and seed with another "
            f"k, b or batch beside it: {run.name} (--batch-size 24 --k 12 --b 6 on 1 process(es)); to continue one, "
            f"resume it with those flags; to start a new run, leave out --resume or give it its own folder with --tag "
            f"NAME")
    for flags in ([], ["--resume", "--k", "16", "--b", "8"]):
        args, name, teacher_named, inputs = student(*flags)
        assert student_folder(tmp_path / name, args, *teacher_named, inputs) == tmp_path / name


def test_a_tagged_teachers_student_named_as_before_is_no_run_of_the_untagged_teacher(tmp_path):
    """Before the teacher's tag was named, a student of teacher_imagenet_resnet34_dali had the name of one of
    teacher_imagenet_resnet34: a student of the untagged teacher takes that folder only if it recorded the
    untagged teacher's weights, or no teacher's (a version that recorded none)."""
    teacher = tmp_path / "teacher_imagenet_resnet34"
    atomic_save({}, teacher / "ckpt" / "best.pth")
    (teacher / "summary.json").write_text(json.dumps({"args": {"tag": None}}))
    args = student_v0.parse_args([*STUDENT, "--teacher-path", str(teacher), "--experiments-dir", str(tmp_path)])
    teacher_arch, _, name, named_teacher = student_v0.teacher_and_run_name(args)
    inputs = {"teacher_identity": "sha256:untagged"}
    earlier = saved_run(tmp_path / name.replace("_k0.75_b0.5_", "_k192_b128_"), started_student(), world_size=1)
    for identity, folder in (("sha256:dali", tmp_path / name), ("sha256:untagged", earlier), (None, earlier)):
        summary = json.loads((earlier / "summary.json").read_text())
        (earlier / "summary.json").write_text(json.dumps({**summary, "teacher_identity": identity}))
        assert student_folder(tmp_path / name, args, teacher_arch, named_teacher, inputs) == folder


def test_the_counts_a_resumed_run_is_told_to_use_are_those_that_can_run_it(monkeypatch):
    """48 images on 5 processes: 1, 2 or 3 processes keep 16 or more each; with --sync-bn every divisor but 1,
    on which --sync-bn is refused (distributed.prepare_device)."""
    monkeypatch.setenv("WORLD_SIZE", "5")
    for sync_bn, counts in ((False, "1, 2, 3"), (True, "2, 3, 4, 6, 8, 12, 16, 24, 48")):
        with pytest.raises(UserError, match=rf"; resume it on {counts} process\(es\), "):
            check_resumed_batch(SimpleNamespace(batch_size=48, sync_bn=sync_bn), "run")
