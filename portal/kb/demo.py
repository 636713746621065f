"""Demo knowledge base: a help center for "Tandem", a team task-tracking SaaS product."""

from __future__ import annotations

from portal.extensions import db
from portal.kb.models import ArticleStatus, Visibility
from portal.kb.services import ArticleInput, create_article, create_category, create_section

PUBLISHED = ArticleStatus.PUBLISHED

# (category, description, [(section, [(title, labels, body, options)])])
CONTENT = [
    ("Account & sign-in", "Signing in, passwords, two-step verification and your profile.", [
        ("Signing in", [
            ("Reset your password", "password, sign-in, locked out", """
Forgot your password? You can set a new one in a minute.

1. Go to the **Sign in** page and choose **Forgot your password?**
2. Enter the email address you use for Tandem.
3. Open the email we send you and follow the link. The link works for **one hour**.
4. Choose a new password of at least 8 characters and sign in.

## I didn't get the reset email

- Check your spam or junk folder for a message from *support@tandem.example*.
- Make sure you typed the address you signed up with; we don't say whether an address
  has an account, so a typo looks like success.
- Wait a few minutes and try again: some company mail servers delay new senders.

## Still locked out?

If your company signs in with Google or Microsoft, your password is managed there. See
[Sign in with Google or Microsoft](#) or ask your IT team.
""", {"promoted": True, "views": 940}),
            ("Sign in with Google or Microsoft (single sign-on)",
             "sso, google, microsoft, saml", """
Workspaces on the **Business** plan can require single sign-on (SSO).

## Turn on SSO (workspace owners)

1. Open **Settings › Security › Single sign-on**.
2. Choose **Google Workspace**, **Microsoft Entra ID** or **Generic SAML 2.0**.
3. For SAML, copy the *ACS URL* and *Entity ID* into your identity provider and paste
   its metadata URL back into Tandem.
4. Click **Test connection**, then **Require SSO for everyone**.

People who already have a password keep their account and data; from now on they sign
in through your identity provider.

## Troubleshooting

| Message | What it means |
|---|---|
| *Account not assigned to this application* | Add the user to the Tandem app in your IdP. |
| *Clock skew detected* | Your identity provider's server time is off by more than 5 minutes. |
| *Email mismatch* | The email in the SAML response differs from the Tandem account. |
""", {"views": 310}),
            ("I didn't receive the confirmation email", "email, sign-up, confirmation", """
When you create an account we send a confirmation link to make sure the address is yours.

- Look in spam, junk and "Promotions" folders.
- Add *support@tandem.example* to your contacts and ask for a new link from the sign-in page.
- Corporate filters sometimes hold new senders for up to 15 minutes.
- The link expires after **24 hours**; request a new one if it has.

If none of this helps, [contact support](/tickets/) and tell us the address you used.
""", {"views": 260}),
        ]),
        ("Security", [
            ("Turn on two-step verification", "2fa, security, authenticator, two-factor", """
Two-step verification (2FA) asks for a code from your phone as well as your password, so a
stolen password alone is not enough to get in.

## Set it up

1. Open **Profile › Security** and choose **Turn on two-step verification**.
2. Scan the QR code with an authenticator app (for example 1Password, Authy or Google
   Authenticator).
3. Type the 6-digit code the app shows to confirm.
4. **Save your recovery codes** somewhere safe. Each code works once.

## Lost your phone?

Sign in with one of your recovery codes instead of the 6-digit code, then set up 2FA again
on your new phone. Without recovery codes, a workspace owner can reset 2FA for you.
""", {"promoted": True, "views": 520}),
            ("Review active sessions and sign out everywhere", "security, sessions, sign out", """
**Profile › Security › Active sessions** lists every browser and device signed in to your
account, with its approximate location and last activity.

- Click **Sign out** next to a session you don't recognise.
- Click **Sign out everywhere** to end every session except this one. Use it if you lost a
  laptop or think someone knows your password, then change your password.

Changing your password also signs out all other sessions automatically.
""", {"views": 120}),
        ]),
        ("Profile & settings", [
            ("Change the email address on your account", "email, profile", """
1. Open **Profile › Account**.
2. Enter your new address and your current password.
3. We send a confirmation link to the **new** address; the change happens when you click it.

Until then you keep signing in with the old address. If your workspace uses single
sign-on, your email is managed by your identity provider instead.
""", {"views": 180}),
            ("Choose which notifications you get", "notifications, email, settings", """
Open **Profile › Notifications** to choose, per event, whether you get an email, a
desktop notification, both or neither.

| Event | Default |
|---|---|
| You are assigned a task | Email and desktop |
| Someone mentions you | Email and desktop |
| A task you follow changes | Desktop |
| Daily summary | Email, 8:00 in your time zone |

**Tip:** turn on *Do not disturb* to pause notifications outside your working hours.
""", {"views": 90}),
            ("Delete your account", "delete, privacy, gdpr", """
Deleting your account removes your profile and signs you out everywhere. Tasks and comments
you created stay in your workspace, shown as written by *Former member*.

1. Open **Profile › Account › Delete account**.
2. Type your password to confirm.

If you are the only owner of a workspace, transfer ownership first or delete the workspace.
You can ask for a copy of your data before deleting: see **Profile › Privacy › Export**.
""", {"views": 75}),
        ]),
    ]),
    ("Billing & plans", "Plans, seats, invoices and payment methods.", [
        ("Plans", [
            ("Compare plans and limits", "pricing, plans, limits", """
| | Free | Team | Business |
|---|---|---|---|
| Members | up to 5 | unlimited | unlimited |
| Projects | 3 | unlimited | unlimited |
| File storage | 2 GB | 100 GB | 1 TB |
| Single sign-on | — | — | ✓ |
| Audit log | — | 30 days | 1 year |
| Support | Help center | Email, 1 business day | Email and chat, 4 hours |

Prices are per member per month; yearly billing saves 20%. Limits apply per workspace.
""", {"views": 410}),
            ("Upgrade, downgrade or cancel your plan", "upgrade, downgrade, cancel, plan", """
Workspace owners and billing admins can change the plan at **Settings › Billing › Plan**.

## Upgrade

The new plan starts immediately. You pay the difference for the rest of the current billing
period (prorated) on your next invoice.

## Downgrade

The change happens at the end of the current period. If you use more than the new plan
allows (for example more than 3 projects on Free), the extra projects become read-only;
nothing is deleted.

## Cancel

Choose **Cancel subscription**. Your workspace stays on the paid plan until the period
ends, then moves to Free. We don't refund partly used periods, except where the law
requires it.
""", {"promoted": True, "views": 630}),
            ("Add or remove seats", "seats, members, billing", """
On Team and Business you pay for each member.

- **Adding** a member adds a seat right away; the prorated cost appears on the next invoice.
- **Removing** a member frees the seat; the credit is applied to your next invoice.
- Guests (people invited to a single project with view or comment access) are free.

See who uses a seat at **Settings › Members**.
""", {"views": 150}),
        ]),
        ("Invoices & payments", [
            ("Download invoices and receipts", "invoice, receipt, billing, pdf", """
Every payment produces an invoice (PDF) you can download at **Settings › Billing ›
Invoices**. Invoices show your company name, address and tax ID as they were when the
invoice was issued.

To change the details on future invoices, edit **Settings › Billing › Billing details**.
Past invoices can't be changed; if one is wrong, [contact support](/tickets/) and we will
issue a corrected copy.

Want invoices sent to your accounts team? Add their address under **Billing email**.
""", {"views": 700}),
            ("Update your payment method", "card, payment, billing", """
1. Open **Settings › Billing › Payment method**.
2. Click **Replace card** and enter the new card. We run a small authorisation (refunded at
   once) to check it.
3. The new card is used for the next payment.

Business plans paying yearly can also pay by bank transfer: ask us for an invoice with
bank details.
""", {"views": 220}),
            ("Why was my card declined?", "card, declined, payment failed", """
A decline comes from your bank, not from us. The most common reasons:

- The card has expired or the billing address doesn't match.
- The bank blocked an international or online payment: approve it in your banking app.
- 3-D Secure confirmation timed out: try again and confirm promptly.
- Not enough funds or over the card's limit.

We retry a failed payment after 3 and 7 days and email the billing contacts each time.
After 14 days without payment the workspace becomes read-only until the invoice is paid.
""", {"views": 340}),
            ("Add a VAT or tax ID to your invoices", "vat, tax, invoice, billing", """
Businesses in the EU and UK can add a VAT number at **Settings › Billing › Billing
details**. We check it with the official registry; when it's valid, reverse charge applies
and invoices show no VAT.

The tax ID only applies to invoices issued after you add it.
""", {"views": 95}),
        ]),
    ]),
    ("Integrations", "Connect Tandem to Slack, email and your own tools.", [
        ("Slack & email", [
            ("Connect Slack", "slack, integration, notifications", """
Get task updates in Slack channels and create tasks from messages.

1. Open **Settings › Integrations › Slack** and click **Connect**.
2. Approve the permissions Slack asks for.
3. In a project, open **⋯ › Slack channel** and pick the channel to post to.

## Create a task from a message

Hover a Slack message, choose **More actions › Create Tandem task**, pick the project.

## Not posting?

Make sure the Tandem app is invited to private channels: type `/invite @Tandem` there.
""", {"views": 280}),
            ("Forward emails into a project", "email, forwarding, inbox", """
Every project has its own address, shown at **Project › ⋯ › Email to project**. Mail sent
there becomes a task: the subject is the title, the message the description, and
attachments are attached.

- Only members of the workspace can create tasks by email; other senders are rejected.
- Attachments up to 25 MB each are kept.
""", {"views": 110}),
        ]),
        ("API & webhooks", [
            ("Create an API token", "api, token, developers", """
API tokens let scripts act as you. Create one at **Profile › Developer › API tokens**, give
it a name and an expiry date, and copy it: it is shown **once**.

```bash
curl -H "Authorization: Bearer $TANDEM_TOKEN" \\
     https://api.tandem.example/v1/projects
```

Treat tokens like passwords. Revoke a token you no longer need; revoking takes effect at
once.
""", {"views": 190}),
            ("Webhooks: events, signatures and retries", "webhooks, api, developers", """
Webhooks send an HTTPS POST to your server when something happens in a project.

## Events

`task.created`, `task.updated`, `task.completed`, `comment.created`, `project.archived`.

## Verify the signature

Each request has a `Tandem-Signature` header: an HMAC-SHA256 of the body with your
webhook secret.

```python
import hashlib, hmac

def is_valid(body: bytes, header: str, secret: str) -> bool:
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)
```

## Retries

Answer with any 2xx status within 10 seconds. Otherwise we retry after 1, 5, 30 minutes
and 2, 6 hours. After the last failure the webhook is paused and the owner gets an email.
""", {"views": 160}),
            ("API rate limits", "api, rate limit, 429", """
| Plan | Requests per minute |
|---|---|
| Free | 60 |
| Team | 600 |
| Business | 3,000 |

Over the limit, the API answers `429 Too Many Requests` with a `Retry-After` header in
seconds. Spread requests out or use webhooks instead of polling.
""", {"views": 85}),
        ]),
    ]),
    ("Troubleshooting", "When something doesn't work as expected.", [
        ("Common problems", [
            ("Tandem is slow or won't load", "slow, loading, performance, browser", """
Most loading problems come from the browser or the network rather than Tandem itself.
Work through these steps in order.

## Check our status page

If there's an incident, it's listed at *status.tandem.example* with updates every 30
minutes.

## Try a private window

Open Tandem in a private (incognito) window. If it works there, a browser extension or
old cached files are the cause: see [Clear your browser cache](#).

## Check your browser

Tandem supports the two latest versions of Chrome, Edge, Firefox and Safari. Update your
browser and restart it.

## Check your network

- Company VPNs and proxies sometimes block WebSockets, which Tandem uses for live updates.
  Ask IT to allow `*.tandem.example` on port 443.
- Try another network, for example your phone's hotspot, to compare.

## Still slow?

[Contact support](/tickets/) with the time it happened, your browser and version, and, if
you can, a screenshot of the browser's network panel.
""", {"views": 560}),
            ("Files won't upload", "upload, files, attachments", """
- Each file can be up to **250 MB** (25 MB on Free).
- Your workspace may have reached its storage limit: see **Settings › Billing › Usage**.
- Some file types are blocked for safety: `.exe`, `.bat`, `.js` and similar.
- Uploads are paused while you are offline and resume when you reconnect.

If an upload stops at 99%, a proxy may be cutting long requests: try another network.
""", {"views": 240}),
            ("Clear your browser cache", "cache, browser, troubleshooting", """
Old files kept by your browser can make pages look broken after an update.

- **Chrome / Edge:** press `Ctrl+Shift+Delete` (`Cmd+Shift+Delete` on Mac), choose
  *Cached images and files*, then **Clear data**.
- **Firefox:** `Ctrl+Shift+Delete`, tick *Cache*, then **Clear**.
- **Safari:** *Settings › Privacy › Manage Website Data*, search for tandem, **Remove**.

Then reload Tandem. You may need to sign in again.
""", {"views": 200}),
        ]),
    ]),
]

EXTRA = [
    # (category index, section name, title, labels, body, visibility, status)
    (3, "Common problems", "Refund exceptions: how support decides", "refund, policy, internal",
     """Internal guidance for agents.

- Refund partly used periods only for outages over 24 hours in that period, or where the
  law requires it (EU consumers within 14 days).
- Duplicate charges: refund at once, no approval needed.
- Anything over 500 EUR needs a team lead's approval in the ticket.
""", Visibility.INTERNAL, PUBLISHED),
    (2, "API & webhooks", "Working offline (beta)", "offline, beta", """Draft: the offline
mode is still in beta. Document how to turn it on once the setting ships.
""", Visibility.PUBLIC, ArticleStatus.DRAFT),
]


def seed_kb(author) -> None:
    """Create the demo categories, sections and articles; the index builds after commit."""
    sections = {}
    for position, (cat_name, cat_desc, section_specs) in enumerate(CONTENT):
        category = create_category(cat_name, cat_desc)
        category.position = position
        for section_name, articles in section_specs:
            section = create_section(category, section_name)
            sections[(position, section_name)] = section
            for title, labels, body, options in articles:
                article = create_article(
                    ArticleInput(title=title, body=body.strip(), section_id=section.id,
                                 labels=labels, promoted=options.get("promoted", False)),
                    author, status=PUBLISHED,
                )
                article.view_count = options.get("views", 0)
    for cat_index, section_name, title, labels, body, visibility, status in EXTRA:
        create_article(
            ArticleInput(title=title, body=body.strip(),
                         section_id=sections[(cat_index, section_name)].id, labels=labels,
                         visibility=visibility),
            author, status=status,
        )
    db.session.flush()
