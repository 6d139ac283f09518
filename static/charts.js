// Small charts as inline SVG, for the dashboard: a line over time and
// vertical bars. No library and no inline styles (the pages' CSP forbids
// them): shapes carry classes that app.css colours (.chart-line,
// .chart-bar, .chart-axis, .chart-label) and presentation attributes only.
//
// Each chart replaces the children of its container with one <svg
// role="img"> whose <title> and aria-label say what it shows in words, so
// a screen reader gets the numbers the picture draws. Bars carry
// data-label and data-value (tests read them).

const SVG = "http://www.w3.org/2000/svg"
const W = 640        // the viewBox; the svg scales to its container's width
const H = 220
const PAD = {top: 22, right: 12, bottom: 42, left: 44}

function el(name, attrs = {}, text = null){
  const node = document.createElementNS(SVG, name)
  for(const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value))
  if(text !== null) node.textContent = text
  return node
}

function frame(container, label){
  const svg = el("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, class: "chart", preserveAspectRatio: "xMidYMid meet"})
  svg.append(el("title", {}, label))
  container.replaceChildren(svg)
  return svg
}

/** A round number at or above `max` for the top of the y axis (at least 1). */
function niceTop(max){
  if(!(max > 0)) return 1
  const magnitude = 10 ** Math.floor(Math.log10(max))
  for(const step of [1, 2, 2.5, 5, 10]){
    if(step * magnitude >= max) return step * magnitude
  }
  return 10 * magnitude
}

function yAxis(svg, top, format){
  const plotH = H - PAD.top - PAD.bottom
  // Counts: no tick halfway up an axis whose top is odd (it would read 0.5 or 2.5).
  const fractions = Number.isInteger(top / 2) ? [0, 0.5, 1] : [0, 1]
  for(const fraction of fractions){
    const y = PAD.top + plotH * (1 - fraction)
    svg.append(el("line", {x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: fraction === 0 ? "chart-axis" : "chart-grid"}))
    svg.append(el("text", {x: PAD.left - 6, y: y + 4, "text-anchor": "end", class: "chart-label"}, format(top * fraction)))
  }
}

function emptyNote(svg, text){
  svg.append(el("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-empty"}, text))
}

/**
 * A line of `points` ({x: number, y: number}, x ascending) with x labels by
 * `formatX` and y labels by `formatY`. `label` describes it in words.
 */
export function lineChart(container, points, {label, formatX = String, formatY = String, empty = "No data yet"}){
  const svg = frame(container, label)
  const top = niceTop(Math.max(0, ...points.map((p) => p.y)))
  yAxis(svg, top, formatY)
  if(points.length === 0){
    emptyNote(svg, empty)
    return svg
  }
  const plotW = W - PAD.left - PAD.right
  const plotH = H - PAD.top - PAD.bottom
  const x0 = points[0].x
  const span = Math.max(1, points[points.length - 1].x - x0)
  const sx = (x) => PAD.left + (points.length === 1 ? plotW : ((x - x0) / span) * plotW)
  const sy = (y) => PAD.top + plotH * (1 - y / top)
  const path = points.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ")
  svg.append(el("path", {d: path, class: "chart-line", fill: "none"}))
  const last = points[points.length - 1]
  svg.append(el("circle", {cx: sx(last.x), cy: sy(last.y), r: 4, class: "chart-dot", "data-value": last.y}))
  const ticks = points.length === 1 ? [points[0]] : [points[0], points[Math.floor((points.length - 1) / 2)], last]
  ticks.forEach((p, i) => {
    const anchor = ticks.length === 1 ? "end" : ["start", "middle", "end"][i]
    svg.append(el("text", {x: sx(p.x), y: H - PAD.bottom + 18, "text-anchor": anchor, class: "chart-label"}, formatX(p.x)))
  })
  return svg
}

/**
 * Vertical bars, one per `bars` entry ({label, value}), labelled below;
 * the value is written above each bar that has one.
 */
export function barChart(container, bars, {label, formatY = String, empty = "No data yet"}){
  const svg = frame(container, label)
  const top = niceTop(Math.max(0, ...bars.map((b) => b.value)))
  yAxis(svg, top, formatY)
  if(bars.length === 0 || bars.every((b) => !b.value)){
    emptyNote(svg, empty)
  }
  const plotW = W - PAD.left - PAD.right
  const plotH = H - PAD.top - PAD.bottom
  const slot = plotW / Math.max(1, bars.length)
  const width = Math.max(2, slot * 0.7)
  const everyNth = Math.ceil(bars.length / 12)   // at most ~12 labels fit
  bars.forEach((bar, i) => {
    const h = (bar.value / top) * plotH
    const x = PAD.left + i * slot + (slot - width) / 2
    const rect = el("rect", {x, y: PAD.top + plotH - h, width, height: Math.max(0, h), class: "chart-bar", "data-label": bar.label, "data-value": bar.value})
    rect.append(el("title", {}, `${bar.label}: ${bar.value}`))
    svg.append(rect)
    if(bar.value > 0){
      svg.append(el("text", {x: x + width / 2, y: PAD.top + plotH - h - 4, "text-anchor": "middle", class: "chart-value"}, String(bar.value)))
    }
    if(i % everyNth === 0){
      const text = bar.label.length > 12 ? `${bar.label.slice(0, 11)}…` : bar.label
      svg.append(el("text", {x: x + width / 2, y: H - PAD.bottom + 18, "text-anchor": "middle", class: "chart-label"}, text))
    }
  })
  return svg
}
