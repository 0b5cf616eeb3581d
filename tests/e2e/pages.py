"""What the browser tests share: signing in as one of the demo cast, and watching every page
of a browser context for Content-Security-Policy violations."""

from registry.demo import demo_password

# The page's own report of each violation: a binding reaches the test, whatever the policy.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportPolicyViolation(
    `${event.violatedDirective} refused ${event.blockedURI || "inline code"} ` +
    `(${event.sourceFile}:${event.lineNumber}) on ${document.URL}`
  );
});
"""
# What Chromium writes to the console about a policy: refusals, and headers it cannot read.
CONSOLE_WORDS = ("Content Security Policy", "Content-Security-Policy", "Permissions-Policy")
_violations: dict = {}


def new_context(browser, **options):
    """A browser context whose policy violations `violations(page)` lists."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    found: list[str] = []
    context.expose_binding("reportPolicyViolation", lambda source, text: found.append(text))
    context.add_init_script(REPORT_VIOLATIONS)
    context.on(
        "console",
        lambda message: (
            found.append(f"console: {message.text}")
            if any(word in message.text for word in CONSOLE_WORDS)
            else None
        ),
    )
    _violations[context] = found
    return context


def violations(page) -> list[str]:
    """The policy violations of every page of `page`'s context so far."""
    return list(_violations[page.context])


def login(browser, live_server, username: str):
    """A new browser context signed in as `username`, on the home page."""
    page = new_context(browser).new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", demo_password(username))
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page
