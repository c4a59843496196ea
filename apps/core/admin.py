from django.contrib import admin

from apps.core.models import (
    ModelPromotion,
    ModelVersion,
    PromptLabel,
    PromptTemplate,
    PromptVersion,
    TrainingJob,
    WorkerHeartbeat,
)

admin.site.site_header = "Contexta administration"
admin.site.site_title = "Contexta admin"
admin.site.index_title = "Data and settings"


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "step", "total_steps", "created_by", "created_at"]
    list_filter = ["status", "kind"]
    readonly_fields = [f.name for f in TrainingJob._meta.fields]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["task", "version", "is_active", "promoted_by", "promoted_at"]
    list_filter = ["task", "is_active"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]


@admin.register(ModelPromotion)
class ModelPromotionAdmin(admin.ModelAdmin):
    list_display = ["task", "version", "previous", "action", "by", "at"]


class PromptVersionInline(admin.TabularInline):
    model = PromptVersion
    extra = 0
    readonly_fields = ["number", "body", "note", "created_by", "created_at"]
    can_delete = False

    def has_add_permission(self, request: object, obj: object = None) -> bool:
        return False  # versions are created by editing the template in the dashboard


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    inlines = [PromptVersionInline]


@admin.register(PromptLabel)
class PromptLabelAdmin(admin.ModelAdmin):
    list_display = ["template", "name", "version", "split_version", "split_percent"]
    readonly_fields = ["template", "name", "version", "split_version", "split_percent", "updated_by"]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "queues", "pid", "last_seen"]
