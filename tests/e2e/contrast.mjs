// WCAG 2.x contrast of the text a page shows, measured in the page from computed styles.
//
// For every visible element with text of its own (and every text field and choice), the text
// colour is compared with the background it sits on: the element's and its ancestors'
// background colours, composited from the first opaque one upwards. Normal text needs 4.5:1,
// large text (24px, or 18.66px bold) 3:1 (WCAG 1.4.3, level AA). Disabled controls are
// exempt, as WCAG says. Pictures (video) under text are not seen by this check.
//
// Marks drawn in colour (an outline, the bars of an icon) are checked the same way against
// what lies behind them, and need 3:1 (WCAG 1.4.11): `graphicContrastFailures`.

/**
 * @typedef {object} ContrastFailure
 * @property {string} text
 * @property {string} color
 * @property {string} background
 * @property {number} ratio
 * @property {number} required
 */

/**
 * Every text on `page` with too little contrast.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<ContrastFailure[]>}
 */
export function textContrastFailures(page) {
  return page.evaluate(measure, { mode: 'text', selector: '*', property: '' });
}

/**
 * Non-text contrast (WCAG 1.4.11, level AA): every visible element matching `selector` whose
 * `property` colour (e.g. `outline-color`, `border-top-color`) is not at least 3:1 against
 * what lies behind the element (its parent's background, composited as for text). For state
 * marks drawn in colour: outlines, icon strokes, bars. `text` names the element.
 * @param {import('playwright-core').Page} page
 * @param {string} selector
 * @param {string} property
 * @returns {Promise<ContrastFailure[]>}
 */
export function graphicContrastFailures(page, selector, property) {
  return page.evaluate(measure, { mode: 'graphic', selector, property });
}

/**
 * Runs in the page.
 * @param {{mode: 'text' | 'graphic', selector: string, property: string}} args
 * @returns {ContrastFailure[]}
 */
function measure({ mode, selector, property }) {
  /** @param {string} css @returns {[number, number, number, number]} */
  const parse = (css) => {
    const m = /rgba?\(([\d.]+)[ ,]+([\d.]+)[ ,]+([\d.]+)(?:[ ,/]+([\d.]+%?))?\)/.exec(css);
    if (!m) throw new Error(`unparsed colour ${css}`);
    let alpha = m[4] === undefined ? 1 : parseFloat(m[4]);
    if (m[4]?.endsWith('%')) alpha /= 100;
    return [Number(m[1]), Number(m[2]), Number(m[3]), alpha];
  };
  /** @param {number[]} top @param {number[]} bottom Opaque. */
  const over = (top, bottom) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat(1);
  };
  /** @param {number[]} rgb */
  const luminance = (rgb) => {
    const [r, g, b] = rgb.slice(0, 3).map((v) => {
      const c = v / 255;
      return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  /** @param {Element} el */
  const background = (el) => {
    /** @type {number[][]} */
    const layers = [];
    for (let node = /** @type {Element | null} */ (el); node; node = node.parentElement) {
      const bg = parse(getComputedStyle(node).backgroundColor);
      if (bg[3] > 0) layers.push(bg);
      if (bg[3] >= 1) break;
    }
    let result = [255, 255, 255, 1]; // The canvas, if nothing is opaque.
    for (const layer of layers.reverse()) result = over(layer, result);
    return result;
  };
  /** @param {Element} el */
  const ownText = (el) => {
    if (el instanceof HTMLInputElement || el instanceof HTMLSelectElement) {
      return el instanceof HTMLSelectElement ? el.selectedOptions[0]?.textContent ?? '' : el.value;
    }
    return [...el.childNodes]
      .filter((n) => n.nodeType === Node.TEXT_NODE)
      .map((n) => n.textContent ?? '')
      .join('')
      .trim();
  };

  /** @type {ContrastFailure[]} */
  const failures = [];
  /** @param {number[]} fg @param {number[]} bg */
  const ratioOf = (fg, bg) => {
    const [light, dark] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
    return (light + 0.05) / (dark + 0.05);
  };
  if (mode === 'graphic') {
    for (const el of document.querySelectorAll(selector)) {
      if (!el.checkVisibility({ opacityProperty: true, visibilityProperty: true })) continue;
      const bg = el.parentElement ? background(el.parentElement) : [255, 255, 255, 1];
      const colour = getComputedStyle(el).getPropertyValue(property);
      const ratio = ratioOf(over(parse(colour), bg), bg);
      if (ratio < 3) {
        failures.push({
          text: `${el.className || el.tagName} in ${el.closest('[id], [data-participant-id]')?.id || 'a tile'}`,
          color: colour,
          background: `rgb(${bg.slice(0, 3).map(Math.round).join(', ')})`,
          ratio: Math.round(ratio * 100) / 100,
          required: 3,
        });
      }
    }
    return failures;
  }
  for (const el of document.body.querySelectorAll('*')) {
    if (el instanceof HTMLOptionElement || el instanceof HTMLScriptElement) continue;
    const text = ownText(el);
    if (!text) continue;
    if (!el.checkVisibility({ opacityProperty: true, visibilityProperty: true })) continue;
    const rect = el.getBoundingClientRect();
    if (rect.width <= 1 || rect.height <= 1) continue; // Visually hidden (screen readers only).
    if (el.closest(':disabled')) continue;
    const style = getComputedStyle(el);
    const bg = background(el);
    const ratio = ratioOf(over(parse(style.color), bg), bg);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const required = large ? 3 : 4.5;
    if (ratio < required) {
      failures.push({
        text: text.slice(0, 60),
        color: style.color,
        background: `rgb(${bg.slice(0, 3).map(Math.round).join(', ')})`,
        ratio: Math.round(ratio * 100) / 100,
        required,
      });
    }
  }
  return failures;
}
