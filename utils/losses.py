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
