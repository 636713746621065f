from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import Email, EqualTo, InputRequired, Length, ValidationError

from portal.auth.models import Role
from portal.auth.passwords import password_problem
from portal.forms import PortalForm, trim


class StrongPassword:
    """The password rule, judged against whose password it is: the form's `user` (reset,
    invitation, change) or the name and email typed beside it (registration, new staff)."""

    def __call__(self, form, field):
        user = getattr(form, "user", None)
        if user is not None:
            name, email = user.name, user.email
        else:
            name = form.name.data if "name" in form else ""
            email = form.email.data if "email" in form else ""
        problem = password_problem(field.data or "", name=name or "", email=email or "")
        if problem:
            raise ValidationError(problem)


PASSWORD_RULES = [InputRequired(), StrongPassword()]



def _email_field(label="Email"):
    return EmailField(
        label,
        validators=[
            InputRequired(), Email(message="Enter a valid email address."), Length(max=254)
        ],
        filters=[trim],
    )


class LoginForm(PortalForm):
    email = _email_field()
    password = PasswordField("Password", validators=[InputRequired()])
    remember = BooleanField("Keep me signed in on this device")
    next = HiddenField()


class RegisterForm(PortalForm):
    name = StringField("Name", validators=[InputRequired(), Length(max=120)], filters=[trim])
    email = _email_field()
    password = PasswordField("Password", validators=PASSWORD_RULES)
    confirm = PasswordField(
        "Confirm password",
        validators=[InputRequired(), EqualTo("password", message="The passwords do not match.")],
    )


class ResetRequestForm(PortalForm):
    email = _email_field()


class ResetPasswordForm(PortalForm):
    """Choosing a new password through an emailed link (reset or invitation)."""

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    password = PasswordField("New password", validators=PASSWORD_RULES)
    confirm = PasswordField(
        "Confirm new password",
        validators=[InputRequired(), EqualTo("password", message="The passwords do not match.")],
    )


class ProfileForm(PortalForm):
    name = StringField("Name", validators=[InputRequired(), Length(max=120)], filters=[trim])
    email = _email_field()
    current_password = PasswordField(
        "Current password (needed to change your email)"
    )


class ChangePasswordForm(PortalForm):
    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    current_password = PasswordField("Current password", validators=[InputRequired()])
    password = PasswordField("New password", validators=PASSWORD_RULES)
    confirm = PasswordField(
        "Confirm new password",
        validators=[InputRequired(), EqualTo("password", message="The passwords do not match.")],
    )


ROLE_LABELS = {Role.CUSTOMER: "Customer", Role.AGENT: "Agent", Role.ADMIN: "Admin"}


class InviteStaffForm(PortalForm):
    """An agent or admin who chooses their own password through an emailed link."""

    name = StringField("Name", validators=[InputRequired(), Length(max=120)], filters=[trim])
    email = _email_field()
    role = SelectField(
        "Role",
        choices=[SelectChoice(role.value, ROLE_LABELS[role]) for role in (Role.AGENT, Role.ADMIN)],
        default=Role.AGENT.value,
    )


class CreateStaffForm(InviteStaffForm):
    """An agent or admin created with an initial password the admin passes on."""

    password = PasswordField("Initial password", validators=PASSWORD_RULES)


class RoleForm(PortalForm):
    role = SelectField(
        "Role", choices=[SelectChoice(role.value, label) for role, label in ROLE_LABELS.items()]
    )
