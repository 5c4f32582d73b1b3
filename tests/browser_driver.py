"""A generic driver for the notebooks' widgets in a real browser (used by tests/test_browser.py).

It knows no widget by name: it finds every top-level widget in a notebook's outputs, the controls inside it
(sliders, dropdowns, toggle buttons, check boxes, text boxes, buttons) and what the learner looks at (its
images, compared by their bytes, and its text outside the controls), operates each control as a learner
would (keyboard on a slider, a typed value, a choice in a dropdown, a click) and reports how long the
output took to change. A widget with a "train" button is a training widget: its controls are set to
cheap values, then the button is pressed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Marks every outermost widget view in the notebook's outputs with data-root="i" and returns their count.
MARK_ROOTS = """() => {
  const roots = [...document.querySelectorAll('.jp-OutputArea-output .jupyter-widgets')]
    .filter(el => !el.parentElement.closest('.jupyter-widgets'))
    .filter(el => el.querySelector('input, select, button, .noUi-handle'));
  roots.forEach((el, i) => el.setAttribute('data-root', String(i)));
  return roots.length;
}"""

# Marks the controls of one root with data-ctl="k" and describes them.
MARK_CONTROLS = """(root) => {
  const found = [];
  const add = (el, kind) => {
    if (el.hasAttribute('data-ctl')) return;
    el.setAttribute('data-ctl', String(found.length));
    const box = el.closest('.widget-inline-hbox') || el;
    const clean = (t) => (t || '').replace(/[\u200b\\s]+/g, ' ').trim();
    const label = clean((box.querySelector('.widget-label') || {}).textContent) || clean(el.innerText)
                  || clean(el.textContent);
    found.push({index: found.length, kind, label});
  };
  root.querySelectorAll('.widget-slider, .widget-hslider').forEach(el => add(el, 'slider'));
  root.querySelectorAll('.widget-dropdown').forEach(el => add(el, 'dropdown'));
  root.querySelectorAll('.widget-toggle-buttons').forEach(el => add(el, 'toggle'));
  root.querySelectorAll('.widget-checkbox').forEach(el => add(el, 'checkbox'));
  root.querySelectorAll('.widget-text:not(.widget-slider), .widget-inline-hbox > input[type=number]')
    .forEach(el => add(el.closest('.widget-inline-hbox') || el, 'text'));
  root.querySelectorAll('button.widget-button, button.jupyter-button:not(.widget-toggle-button)')
    .forEach(el => add(el, 'button'));
  return found;
}"""

# A control a learner cannot operate (a slider's noUiSlider carries the attribute, inputs their property).
IS_DISABLED = """(el) => {
  const slider = el.querySelector('.noUi-target');
  if (slider) return slider.hasAttribute('disabled');
  const parts = [...el.querySelectorAll('input, select, button')];
  return parts.length > 0 && parts.every(p => p.disabled);
}"""

# What the learner looks at: a hash of every image's bytes, and the text outside the controls.
SNAPSHOT = """async (root) => {
  const hash = (bytes) => { let h = 2166136261; for (const b of bytes) { h ^= b; h = Math.imul(h, 16777619); }
                            return (h >>> 0).toString(16) + ':' + bytes.length; };
  const images = [];
  for (const img of root.querySelectorAll('img')) {
    if (!img.src) { images.push('none'); continue; }
    const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    images.push(hash(bytes));
  }
  const copy = root.cloneNode(true);
  copy.querySelectorAll('[data-ctl], .widget-readout, .widget-progress, input, select, button')
    .forEach(el => el.remove());
  return {images, text: copy.innerText.replace(/\\s+/g, ' ').trim()};
}"""


@dataclass
class Report:
    """What one widget's drive measured: per control, its label, what was done and the seconds the output
    took to change (None: it was not expected to change, e.g. a training widget's setting)."""

    name: str
    steps: list[tuple[str, str, float | None]] = field(default_factory=list)
    train_s: float | None = None
    text_after: str = ""

    def line(self) -> str:
        parts = [f"{label} [{action}]" + (f" {s:.2f} s" if s is not None else "") for label, action, s in self.steps]
        train = f"; train -> done {self.train_s:.1f} s" if self.train_s is not None else ""
        return f"{self.name}: " + ", ".join(parts) + train


def roots(page) -> list:
    count = page.evaluate(MARK_ROOTS)
    return [page.locator(f'[data-root="{i}"]') for i in range(count)]


def snapshot(root) -> dict:
    return root.evaluate(SNAPSHOT)


def settled(root, quiet_s: float = 0.5, timeout_s: float = 30.0) -> dict:
    """The output once it has stopped changing for quiet_s (a late redraw of the previous control must not count
    as the next control's)."""
    t0, last = time.perf_counter(), snapshot(root)
    while time.perf_counter() - t0 < timeout_s:
        time.sleep(quiet_s)
        now = snapshot(root)
        if now == last:
            return now
        last = now
    return last


def wait_changed(root, before: dict, timeout_s: float, what: str) -> float:
    """Seconds until the images or the text differ from `before`; AssertionError after timeout_s."""
    t0 = time.perf_counter()
    while True:
        now = snapshot(root)
        if now != before:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout_s:
            raise AssertionError(f"{what}: the output did not change within {timeout_s:.0f} s "
                                 f"(images {now['images']}, text {now['text'][:200]!r})")
        time.sleep(0.1)


def operate(page, control, kind: str, cheap: bool) -> str:
    """Change one control as a learner would; returns what was done. cheap: pick the first option of a
    dropdown and move sliders down (a training widget's cheapest settings)."""
    if kind == "slider":
        handle = control.locator(".noUi-handle").first
        before = control.locator(".widget-readout").inner_text()
        handle.focus()
        key = "ArrowLeft" if cheap else "ArrowRight"
        handle.press(key)
        if control.locator(".widget-readout").inner_text() == before:  # at the end of its range
            key = "ArrowRight" if key == "ArrowLeft" else "ArrowLeft"
            handle.press(key)
        return key
    if kind == "dropdown":
        select = control.locator("select")
        options = select.locator("option").all_inner_texts()
        current = select.evaluate("s => s.options[s.selectedIndex].text")
        choice = options[0] if cheap and options[0] != current else next(o for o in options if o != current)
        select.select_option(label=choice)
        return f"select {choice}"
    if kind == "toggle":
        button = control.locator("button:not(.mod-active)").first
        text = button.inner_text()
        button.click()
        return f"click {text}"
    if kind == "checkbox":
        control.locator("input").click()
        return "tick" if control.locator("input").is_checked() else "untick"
    if kind == "text":
        box = control.locator("input").first
        value = box.input_value()
        new = str(int(float(value)) + 1) if value.replace(".", "", 1).lstrip("-").isdigit() else value + "x"
        box.fill(new)
        box.press("Enter")
        return f"type {new}"
    raise ValueError(f"kind: expected slider, dropdown, toggle, checkbox or text, got {kind!r}")


def type_into_readout(page, control) -> str:
    """Type the slider's next value into its readout (as a learner types a number)."""
    readout = control.locator(".widget-readout")
    handle = control.locator(".noUi-handle").first
    low, high = float(handle.get_attribute("aria-valuemin")), float(handle.get_attribute("aria-valuemax"))
    value = float(handle.get_attribute("aria-valuenow"))
    target = low + (high - low) * (0.25 if value > (low + high) / 2 else 0.75)
    text = f"{target:.4g}" if high - low < 10 else str(round(target))
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    return f"type {text}"


def drive(page, root, name: str, shots, redraw_s: float, train_s: float) -> Report:
    """Operate every control of one widget and check that its output follows; see the module docstring."""
    root.scroll_into_view_if_needed()
    report = Report(name)
    controls = root.evaluate(MARK_CONTROLS)
    root.screenshot(path=str(shots / f"{name}_before.png"))
    buttons = [c for c in controls if c["kind"] == "button"]
    train = next((c for c in buttons if "train" in c["label"].lower()), None)
    settings = [c for c in controls if c["kind"] != "button"]
    assert settings or train, f"{name}: no controls found"
    typed = False
    for c in settings:
        control = root.locator(f'[data-ctl="{c["index"]}"]')
        if control.evaluate(IS_DISABLED):
            report.steps.append((c["label"], "disabled: does not apply", None))
            continue
        before = settled(root)
        action = operate(page, control, c["kind"], cheap=train is not None)
        if train is None:  # a redrawing widget: every control must change what the learner sees
            seconds = wait_changed(root, before, redraw_s, f"{name}: {c['label']} ({action})")
            report.steps.append((c["label"], action, seconds))
            if c["kind"] == "slider" and not typed:  # one typed value per widget
                before, typed = settled(root), True
                action = type_into_readout(page, control)
                seconds = wait_changed(root, before, redraw_s, f"{name}: {c['label']} ({action})")
                report.steps.append((c["label"], action, seconds))
        else:
            time.sleep(0.3)
            report.steps.append((c["label"], action, None))
    if train is not None:
        button = root.locator(f'[data-ctl="{train["index"]}"]')
        before = snapshot(root)
        t0 = time.perf_counter()
        button.click()
        button.click(force=True, no_wait_after=True)  # a second click while busy must not start a second run
        wait_disabled(button, 10, f"{name}: the train button did not turn busy")
        page.wait_for_function("b => !b.disabled", arg=button.element_handle(), timeout=train_s * 1000)
        report.train_s = time.perf_counter() - t0
        after = snapshot(root)
        assert after != before, f"{name}: training ended and the output did not change"
        assert after["images"] != before["images"], f"{name}: the plot was not redrawn"
        time.sleep(2.0)  # no second run: the output stays as it is
        assert snapshot(root) == after and not button.is_disabled(), f"{name}: a second run started"
        report.text_after = after["text"]
    else:
        report.text_after = snapshot(root)["text"]
    root.screenshot(path=str(shots / f"{name}_after.png"))
    return report


def wait_disabled(button, timeout_s: float, message: str) -> None:
    t0 = time.perf_counter()
    while not button.is_disabled():
        assert time.perf_counter() - t0 < timeout_s, message
        time.sleep(0.05)
