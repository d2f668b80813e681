"""Albumentations pipelines for training and validation, built from a stage config."""

from __future__ import annotations

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

from .config import AugmentConfig
from .copy_paste import CopyPaste


def train_pipeline(
    aug: AugmentConfig, image_size: int, mean: tuple, std: tuple, background_dir: str | None, paste_p: float
) -> A.Compose:
    """Paste -> geometry -> photometric -> crop/resize to ``image_size`` -> normalise -> tensors.

    Input: image (H, W, 3) uint8 RGB, mask (H, W) float32 alpha. Output: image (3, S, S) float
    tensor, mask (S, S) float tensor in [0, 1].
    """
    return A.Compose(
        [
            paste_or_letterbox(background_dir, aug, paste_p),
            A.HorizontalFlip(p=aug.flip_p),
            A.Affine(
                scale=tuple(aug.affine_scale),
                translate_percent=tuple(aug.affine_translate),
                rotate=(-aug.rotate, aug.rotate),
                shear=tuple(aug.affine_shear),
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                mask_interpolation=cv2.INTER_LINEAR,
                p=aug.affine_p,
            ),
            A.OneOf(
                [A.Perspective(scale=tuple(aug.perspective_scale)), A.GridDistortion(distort_limit=aug.grid_distort)],
                p=aug.distort_p,
            ),
            A.OneOf([A.GaussNoise(std_range=tuple(aug.noise_std)), A.ISONoise()], p=aug.noise_p),
            A.OneOf([A.CLAHE(), A.Sharpen(alpha=tuple(aug.sharpen_alpha))], p=aug.contrast_p),
            A.OneOf(
                [
                    A.GaussianBlur(blur_limit=tuple(aug.blur_limit)),
                    A.MotionBlur(blur_limit=tuple(aug.blur_limit)),
                    A.ImageCompression(quality_range=tuple(aug.jpeg_quality)),
                    A.Downscale(scale_range=tuple(aug.downscale)),
                ],
                p=aug.degrade_p,
            ),
            A.OneOf(color_transforms(aug), p=aug.color_p),
            crop_or_letterbox(aug, image_size),
            A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
            ToTensorV2(),
        ],
    )


def color_transforms(aug: AugmentConfig) -> list[A.BasicTransform]:
    """The colour changes, one drawn per sample: jitter, RGB shift, Planckian (light source) jitter, shuffle."""
    brightness, contrast, saturation, hue = aug.jitter
    shift = aug.rgb_shift
    return [
        A.ColorJitter(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue),
        A.RGBShift(r_shift_limit=shift, g_shift_limit=shift, b_shift_limit=shift),
        A.PlanckianJitter(),
        A.ChannelShuffle(),
    ]


def letterbox(image_size: int, p: float = 1.0) -> A.Compose:
    """Longest side to ``image_size``, centred black padding to a square: what inference does."""
    return A.Compose(
        [
            A.LongestMaxSize(max_size=image_size, interpolation=cv2.INTER_AREA, mask_interpolation=cv2.INTER_AREA),
            A.PadIfNeeded(image_size, image_size, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
        ],
        p=p,
    )


def crop_or_letterbox(aug: AugmentConfig, image_size: int) -> A.BasicTransform:
    """To the square ``image_size``: a random resized crop, or with ``aug.letterbox_p`` a letterbox."""
    crop = A.RandomResizedCrop(
        size=(image_size, image_size),
        scale=(aug.crop_min_scale, 1.0),
        ratio=tuple(aug.crop_ratio),
        mask_interpolation=cv2.INTER_LINEAR,
        p=1.0 - aug.letterbox_p,
    )
    if aug.letterbox_p <= 0:
        return crop
    return A.OneOf([crop, letterbox(image_size, p=aug.letterbox_p)], p=1.0)


def eval_pipeline(image_size: int, mean: tuple, std: tuple) -> A.Compose:
    """Letterbox to ``image_size`` (longest side, centred zero padding), normalise, to tensors."""
    return A.Compose([letterbox(image_size), A.Normalize(mean=mean, std=std, max_pixel_value=255.0), ToTensorV2()])


def paste_or_letterbox(background_dir: str | None, aug: AugmentConfig, paste_p: float) -> A.BasicTransform:
    """With ``paste_p`` paste the object on a new background, else letterbox the photo to the canvas."""
    paste = CopyPaste(
        background_dir,
        canvas=aug.canvas,
        scale=(aug.paste_min_scale, aug.paste_max_scale),
        studio_p=aug.studio_p,
        shadow_p=aug.shadow_p,
        p=1.0,
        background_weights=aug.background_weights,
        centre=tuple(aug.paste_centre),
        aspect_range=tuple(aug.aspect_range),
        reflection_p=aug.reflection_p,
        prop_p=aug.prop_p,
        tint_p=aug.tint_p,
    )
    if paste_p >= 1.0:
        return paste
    letterbox = A.Compose(
        [
            A.LongestMaxSize(max_size=aug.canvas, mask_interpolation=cv2.INTER_LINEAR),
            A.PadIfNeeded(aug.canvas, aug.canvas, border_mode=cv2.BORDER_REFLECT_101),
        ],
        p=1.0 - paste_p,
    )
    if paste_p <= 0:
        return letterbox
    paste.p = paste_p
    return A.OneOf([paste, letterbox], p=1.0)
