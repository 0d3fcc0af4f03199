"""Distillation losses as pure functions of tensors (step 7 of the UNIX step)."""
import torch
import torch.nn.functional as F

AT_WEIGHT = 1000.0
SP_WEIGHT = 3000.0


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """T^2 * KL(softmax(t / T) || softmax(s / T)), summed over classes, mean over the batch.

    T^2 keeps the gradient scale independent of the temperature (Hinton et al.).
    """
    log_p_student = F.log_softmax(student_logits / T, dim=1)
    p_teacher = F.softmax(teacher_logits / T, dim=1)
    return F.kl_div(log_p_student, p_teacher, reduction="batchmean") * T * T


def mixed_cross_entropy(logits, targets_a, targets_b, mix) -> torch.Tensor:
    """mean((1 - m) * CE(s, y_a) + m * CE(s, y_b)): cross-entropy on mixed images."""
    ce_a = F.cross_entropy(logits, targets_a, reduction="none")
    ce_b = F.cross_entropy(logits, targets_b, reduction="none")
    return ((1 - mix) * ce_a + mix * ce_b).mean()


def _log_target_split(logits, target_mask):
    """Under softmax(logits): log [P(target), P(not target)] (n, 2) and the log-softmax over the
    non-target classes alone (n, C), 0 at the target. Computed from logsumexps, so that neither
    probability underflows to log 0 when the network is sure of itself."""
    log_norm = logits.logsumexp(dim=1, keepdim=True)
    others = logits.masked_fill(target_mask, float("-inf"))
    log_others_norm = others.logsumexp(dim=1, keepdim=True)
    target_logit = logits.masked_fill(~target_mask, 0.0).sum(dim=1, keepdim=True)
    log_binary = torch.cat([target_logit - log_norm, log_others_norm - log_norm], dim=1)
    log_non_target = (others - log_others_norm).masked_fill(target_mask, 0.0)
    return log_binary, log_non_target


def _kl_terms(log_p_teacher, log_p_student) -> torch.Tensor:
    return log_p_teacher.exp() * (log_p_teacher - log_p_student)


def dkd_per_image(student_logits, teacher_logits, targets, alpha: float, beta: float, T: float) -> torch.Tensor:
    """Decoupled KD (Zhao et al., CVPR 2022) of each image: T^2 (alpha TCKD + beta NCKD), shape (n,).

    TCKD is the KL divergence between teacher and student of the binary split [target, all others];
    NCKD the KL divergence of the distributions over the non-target classes alone; both at temperature T.
    """
    # Not F.one_hot: it checks the labels on the host, which a CUDA graph cannot record.
    classes = torch.arange(student_logits.shape[1], device=targets.device)
    target_mask = targets[:, None] == classes
    binary_s, non_target_s = _log_target_split(student_logits / T, target_mask)
    binary_t, non_target_t = _log_target_split(teacher_logits / T, target_mask)
    tckd = _kl_terms(binary_t, binary_s).sum(dim=1)
    nckd = _kl_terms(non_target_t, non_target_s).sum(dim=1)  # 0 at the target: both logs are 0 there
    return (alpha * tckd + beta * nckd) * T * T


def dkd_loss(student_logits, teacher_logits, targets, alpha: float, beta: float, T: float) -> torch.Tensor:
    """DKD as published: the mean over the batch of dkd_per_image."""
    return dkd_per_image(student_logits, teacher_logits, targets, alpha, beta, T).mean()


def mixed_dkd_loss(student_logits, teacher_logits, targets_a, targets_b, mix, alpha: float, beta: float,
                   T: float, rule: str = "weighted") -> torch.Tensor:
    """DKD on mixed images, each with labels y_a (weight 1 - m) and y_b (weight m), by one of two rules.

    DKD needs one label to split target from non-target classes; a mixed image has two.
    "weighted" (the default): mean((1 - m) * DKD(y_a) + m * DKD(y_b)), the loss against each label weighted
    as mixed cross-entropy weights them; swapping the labels together with m and 1 - m leaves it unchanged.
    "split": dkd_split_per_image, the rule the DKD authors suggested (mdistiller issue #13).
    Under both, m = 0 (an image UNIX keeps un-mixed, and every image of conventional KD) is plain DKD.
    """
    if rule == "split":
        return dkd_split_per_image(student_logits, teacher_logits, targets_a, targets_b, mix, alpha, beta, T).mean()
    dkd_a = dkd_per_image(student_logits, teacher_logits, targets_a, alpha, beta, T)
    dkd_b = dkd_per_image(student_logits, teacher_logits, targets_b, alpha, beta, T)
    return ((1 - mix) * dkd_a + mix * dkd_b).mean()


def _log_group_probs(logits, groups):
    """log P(group) under softmax(logits), (n, len(groups)), for boolean class masks (n, C). An empty
    group's entry is finite and meaningless (its logsumexp runs over all classes instead of none, so that
    no -inf reaches the gradient): the caller drops it."""
    log_norm = logits.logsumexp(dim=1, keepdim=True)
    picked = [torch.where(group.any(dim=1, keepdim=True), logits.masked_fill(~group, float("-inf")), logits)
              for group in groups]
    return torch.cat([p.logsumexp(dim=1, keepdim=True) for p in picked], dim=1) - log_norm


def dkd_split_per_image(student_logits, teacher_logits, targets_a, targets_b, mix, alpha: float, beta: float,
                        T: float) -> torch.Tensor:
    """DKD of each mixed image with both labels as targets, shape (n,): T^2 (alpha TCKD + beta NCKD).

    TCKD is the KL divergence of the three-way split [y_a, y_b, every other class], NCKD that of the
    distribution over the classes other than both labels (the DKD author's rule for mixup, mdistiller
    issue #13). An image with m = 0, or with y_b = y_a, has one label: its split is DKD's own [y, others].
    """
    classes = torch.arange(student_logits.shape[1], device=targets_a.device)
    label_a = targets_a[:, None] == classes
    label_b = (targets_b[:, None] == classes) & ~label_a & (mix[:, None] > 0)
    rest = ~(label_a | label_b)
    groups = (label_a, label_b, rest)
    present = torch.cat([group.any(dim=1, keepdim=True) for group in groups], dim=1)
    split_s = _log_group_probs(student_logits / T, groups)
    split_t = _log_group_probs(teacher_logits / T, groups)
    tckd = torch.where(present, _kl_terms(split_t, split_s), 0.0).sum(dim=1)
    rest_s = (student_logits / T).masked_fill(~rest, float("-inf")).log_softmax(dim=1).masked_fill(~rest, 0.0)
    rest_t = (teacher_logits / T).masked_fill(~rest, float("-inf")).log_softmax(dim=1).masked_fill(~rest, 0.0)
    nckd = _kl_terms(rest_t, rest_s).masked_fill(~rest, 0.0).sum(dim=1)
    return (alpha * tckd + beta * nckd) * T * T


def standardise(logits: torch.Tensor, eps: float) -> torch.Tensor:
    """Z-score of each row (Sun et al., CVPR 2024): (z - mean) / (eps + std), std with Bessel's correction.

    eps keeps a constant row (std 0) finite: it standardises to zeros."""
    mean = logits.mean(dim=1, keepdim=True)
    std = logits.std(dim=1, keepdim=True)
    return (logits - mean) / (eps + std)


def lskd_loss(student_logits, teacher_logits, T: float, eps: float) -> torch.Tensor:
    """KD with logit standardisation: kd_loss of the z-scored logits at the base temperature T."""
    return kd_loss(standardise(student_logits, eps), standardise(teacher_logits, eps), T)


def attention_map(feature: torch.Tensor) -> torch.Tensor:
    """L2-normalised spatial attention: channel mean of squared activations, flattened."""
    return F.normalize(feature.pow(2).mean(dim=1).flatten(1), dim=1)


def _match_spatial(f_s: torch.Tensor, f_t: torch.Tensor):
    """Average-pool the larger feature map to the smaller one's size."""
    size_s, size_t = f_s.shape[-2:], f_t.shape[-2:]
    if size_s[0] > size_t[0]:
        f_s = F.adaptive_avg_pool2d(f_s, size_t)
    elif size_t[0] > size_s[0]:
        f_t = F.adaptive_avg_pool2d(f_t, size_s)
    return f_s, f_t


def at_loss(student_feats, teacher_feats) -> torch.Tensor:
    """Attention transfer (Zagoruyko & Komodakis) over pairs of intermediate feature maps."""
    total = 0.0
    for f_s, f_t in zip(student_feats, teacher_feats):
        f_s, f_t = _match_spatial(f_s, f_t)
        total = total + (attention_map(f_s) - attention_map(f_t)).pow(2).mean()
    return total


def _row_normalised_gram(flat: torch.Tensor) -> torch.Tensor:
    """Gram matrix of the rows of each (rows, d) matrix in `flat`, each of its rows L2-normalised."""
    return F.normalize(flat @ flat.transpose(-1, -2), dim=-1)


def sp_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Similarity preserving as the UNIXKD authors' runs computed it: per image, over channels.

    Each image's map is flattened to (C, H*W), with C the student's channel count (the teacher's map
    is reshaped to C rows, which needs C to divide its size); the loss is
    ||G_t - G_s||_F^2 / C^2 of the row-normalised C x C Grams, summed over the images.
    """
    n, channels = student_feat.shape[:2]
    g_s = _row_normalised_gram(student_feat.reshape(n, channels, -1))
    g_t = _row_normalised_gram(teacher_feat.reshape(n, channels, -1))
    return (g_t - g_s).pow(2).sum() / (channels * channels)


def sp_batch_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Similarity preserving as published (Tung & Mori): ||G_t - G_s||_F^2 / bsz^2 of the
    row-normalised bsz x bsz Grams between the images of the batch."""
    bsz = student_feat.shape[0]
    g_s = _row_normalised_gram(student_feat.flatten(1))
    g_t = _row_normalised_gram(teacher_feat.flatten(1))
    return (g_t - g_s).pow(2).sum() / (bsz * bsz)
