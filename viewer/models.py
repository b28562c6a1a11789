"""What the viewer keeps: window presets, annotations and key images."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from pacs.models import Instance


class WindowPreset(models.Model):
    """A named window (PS3.3 C.11.2.1.2) offered for one modality's images.

    Each tenant keeps its own list; the first migration fills in common CT
    windows. Values are in the modality's units after the Modality LUT (HU
    for CT).
    """

    modality = models.CharField(
        _("modality"), max_length=16, help_text=_("A DICOM modality code, e.g. CT.")
    )
    label = models.CharField(_("label"), max_length=64)
    window_center = models.FloatField(_("window center"))
    window_width = models.FloatField(_("window width"))
    position = models.PositiveSmallIntegerField(
        _("position"),
        default=0,
        help_text=_("Order in the toolbar; the first nine have keys 1 to 9."),
    )

    class Meta:
        ordering = ["modality", "position", "pk"]
        verbose_name = _("window preset")
        verbose_name_plural = _("window presets")
        constraints = [
            models.UniqueConstraint(
                fields=["modality", "label"], name="viewer_preset_unique_label"
            ),
            models.CheckConstraint(
                condition=models.Q(window_width__gte=1),
                name="viewer_preset_width_at_least_one",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.modality} {self.label}"


class AnnotationKind(models.TextChoices):
    LENGTH = "length", _("Length")
    ANGLE = "angle", _("Angle")
    ELLIPSE = "ellipse", _("Ellipse ROI")
    PROBE = "probe", _("Probe")


class Annotation(models.Model):
    """A measurement one reader drew on one frame; only its author sees it.

    ``points`` are image coordinates in pixels, (0, 0) at the top-left corner
    of the first pixel. ``measurement`` holds what the server computed from
    the stored pixels when the annotation was last saved.
    """

    instance = models.ForeignKey(
        Instance, on_delete=models.CASCADE, related_name="annotations"
    )
    frame_number = models.PositiveIntegerField(default=1)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=AnnotationKind.choices)
    points = models.JSONField()
    measurement = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["author", "instance"])]

    def __str__(self) -> str:
        return f"{self.kind} on {self.instance.sop_instance_uid}:{self.frame_number}"


class KeyImage(models.Model):
    """A frame a reader marked as key to the study; every reader sees the list."""

    instance = models.ForeignKey(
        Instance, on_delete=models.CASCADE, related_name="key_images"
    )
    frame_number = models.PositiveIntegerField(default=1)
    marked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    marked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["marked_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "frame_number"], name="viewer_key_image_once"
            )
        ]

    def __str__(self) -> str:
        return f"key image {self.instance.sop_instance_uid}:{self.frame_number}"
