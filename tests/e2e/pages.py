"""What the browser tests share: signing in as one of the demo cast."""

from registry.demo import demo_password


def login(browser, live_server, username: str):
    """A new browser context signed in as `username`, on the home page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", demo_password(username))
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page
