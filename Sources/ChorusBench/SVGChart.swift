import Foundation

/// Minimal SVG charts for benchmark results: line charts and stacked bars, self-contained files
/// (no scripts, no external fonts), readable in a browser or on GitHub.
public enum SVGChart {
    public struct Series: Sendable {
        public var name: String
        /// (x, y) points, drawn in x order.
        public var points: [(x: Double, y: Double)]

        public init(name: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.points = points
        }
    }

    static let palette = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    ]

    static func color(_ i: Int) -> String { palette[i % palette.count] }

    /// XML-escapes text content and attribute values.
    public static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(c)
            }
        }
        return out
    }

    static func number(_ v: Double) -> String { String(format: "%.1f", v) }

    /// Tick values covering [low, high] (the first at or below low, the last at or above high): 1, 2 or 5
    /// times a power of ten apart, about `count` of them.
    public static func ticks(low: Double, high: Double, count: Int = 5) -> [Double] {
        guard high > low, high.isFinite, low.isFinite else { return [low] }
        let raw = (high - low) / Double(max(count, 1))
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        // From the last multiple of step at or below low to the first at or above high.
        var values: [Double] = []
        var i = (low / step).rounded(.down)
        while true {
            let v = i * step
            values.append(abs(v) < step * 1e-9 ? 0 : v)
            if v >= high - step * 1e-9 { break }
            i += 1
        }
        return values
    }

    static func tickLabel(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e7 { return String(Int(v)) }
        return String(format: abs(v) < 1 ? "%.2f" : "%.1f", v)
    }

    struct Frame {
        let width = 760.0
        let height = 440.0
        let left = 70.0
        let right = 200.0
        let top = 44.0
        let bottom = 56.0
        var plotWidth: Double { width - left - right }
        var plotHeight: Double { height - top - bottom }
    }

    static func header(_ f: Frame, title: String) -> String {
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(f.width))" height="\(Int(f.height))" \
        viewBox="0 0 \(Int(f.width)) \(Int(f.height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect x="0" y="0" width="\(Int(f.width))" height="\(Int(f.height))" fill="white"/>
        <text x="\(number(f.width / 2))" y="24" text-anchor="middle" font-size="15" font-weight="bold">\(escape(title))</text>

        """
    }

    static func axes(
        _ f: Frame, xLabel: String, yLabel: String, yTicks: [Double], y: (Double) -> Double
    ) -> String {
        var s = ""
        for t in yTicks {
            let py = y(t)
            s += "<line x1=\"\(number(f.left))\" y1=\"\(number(py))\" x2=\"\(number(f.left + f.plotWidth))\" "
            s += "y2=\"\(number(py))\" stroke=\"#dddddd\"/>\n"
            s +=
                "<text x=\"\(number(f.left - 6))\" y=\"\(number(py + 4))\" text-anchor=\"end\">\(tickLabel(t))</text>\n"
        }
        s += "<line x1=\"\(number(f.left))\" y1=\"\(number(f.top))\" x2=\"\(number(f.left))\" "
        s += "y2=\"\(number(f.top + f.plotHeight))\" stroke=\"black\"/>\n"
        s +=
            "<line x1=\"\(number(f.left))\" y1=\"\(number(f.top + f.plotHeight))\" x2=\"\(number(f.left + f.plotWidth))\" "
        s += "y2=\"\(number(f.top + f.plotHeight))\" stroke=\"black\"/>\n"
        s += "<text x=\"\(number(f.left + f.plotWidth / 2))\" y=\"\(number(f.height - 14))\" text-anchor=\"middle\">"
        s += "\(escape(xLabel))</text>\n"
        let cy = f.top + f.plotHeight / 2
        s += "<text x=\"18\" y=\"\(number(cy))\" text-anchor=\"middle\" transform=\"rotate(-90 18 \(number(cy)))\">"
        s += "\(escape(yLabel))</text>\n"
        return s
    }

    static func legend(_ f: Frame, names: [String], colors: [String], dashed: Set<Int> = []) -> String {
        var s = ""
        for (i, name) in names.enumerated() {
            let y = f.top + 8 + Double(i) * 18
            let x = f.left + f.plotWidth + 16
            if dashed.contains(i) {
                s += "<line x1=\"\(number(x))\" y1=\"\(number(y))\" x2=\"\(number(x + 18))\" y2=\"\(number(y))\" "
                s += "stroke=\"\(colors[i])\" stroke-width=\"2\" stroke-dasharray=\"5,3\"/>\n"
            } else {
                s +=
                    "<rect x=\"\(number(x))\" y=\"\(number(y - 6))\" width=\"18\" height=\"10\" fill=\"\(colors[i])\"/>\n"
            }
            s += "<text x=\"\(number(x + 24))\" y=\"\(number(y + 4))\">\(escape(name))</text>\n"
        }
        return s
    }

    /// A line chart; `reference` draws a dashed horizontal line (e.g. the plain-target rate).
    /// `xTicks` defaults to the distinct x values of the series.
    public static func lines(
        title: String, xLabel: String, yLabel: String, series: [Series], reference: (name: String, y: Double)? = nil,
        yFromZero: Bool = true
    ) -> String {
        let f = Frame()
        let xs = Array(Set(series.flatMap { $0.points.map(\.x) })).sorted()
        var ys = series.flatMap { $0.points.map(\.y) }.filter(\.isFinite)
        if let reference { ys.append(reference.y) }
        let xLow = xs.first ?? 0
        let xHigh = max(xs.last ?? 1, xLow + 1)
        var yLow = yFromZero ? 0 : (ys.min() ?? 0)
        var yHigh = ys.max() ?? 1
        if yHigh <= yLow { yHigh = yLow + 1 }
        let yTicks = ticks(low: yLow, high: yHigh * 1.05)
        yLow = min(yLow, yTicks.first ?? yLow)
        yHigh = max(yHigh, yTicks.last ?? yHigh)
        let px = { (x: Double) in f.left + 20 + (x - xLow) / (xHigh - xLow) * (f.plotWidth - 40) }
        let py = { (y: Double) in f.top + f.plotHeight - (y - yLow) / (yHigh - yLow) * f.plotHeight }
        var s = header(f, title: title)
        s += axes(f, xLabel: xLabel, yLabel: yLabel, yTicks: yTicks, y: py)
        for x in xs {
            s += "<text x=\"\(number(px(x)))\" y=\"\(number(f.top + f.plotHeight + 18))\" text-anchor=\"middle\">"
            s += "\(tickLabel(x))</text>\n"
        }
        var names: [String] = []
        var colors: [String] = []
        var dashed: Set<Int> = []
        for (i, series) in series.enumerated() {
            let c = color(i)
            let points = series.points.filter { $0.y.isFinite }.sorted { $0.x < $1.x }
            if points.count > 1 {
                let path = points.map { "\(number(px($0.x))),\(number(py($0.y)))" }.joined(separator: " ")
                s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\"/>\n"
            }
            for p in points {
                s += "<circle cx=\"\(number(px(p.x)))\" cy=\"\(number(py(p.y)))\" r=\"3.5\" fill=\"\(c)\">"
                s +=
                    "<title>\(escape(series.name)): \(tickLabel(p.x)) → \(String(format: "%.3f", p.y))</title></circle>\n"
            }
            names.append(series.name)
            colors.append(c)
        }
        if let reference {
            let y = py(reference.y)
            s += "<line x1=\"\(number(f.left))\" y1=\"\(number(y))\" x2=\"\(number(f.left + f.plotWidth))\" "
            s += "y2=\"\(number(y))\" stroke=\"black\" stroke-width=\"1.5\" stroke-dasharray=\"5,3\"/>\n"
            dashed.insert(names.count)
            names.append(reference.name)
            colors.append("black")
        }
        s += legend(f, names: names, colors: colors, dashed: dashed)
        s += "</svg>\n"
        return s
    }

    /// Stacked bars: one bar per category, `segments[j].values[i]` the height of segment j in bar i.
    public static func stackedBars(
        title: String, yLabel: String, categories: [String], segments: [(name: String, values: [Double])]
    ) -> String {
        let f = Frame()
        // Rotated category labels hang below the axis: leave them room.
        let labelRoom = Double(min(30, categories.map(\.count).max() ?? 0)) * 4.5
        let totals = categories.indices.map { i in segments.reduce(0) { $0 + max(0, $1.values[i]) } }
        let yTicks = ticks(low: 0, high: max(totals.max() ?? 1, 1e-9) * 1.05)
        let yHigh = max(yTicks.last ?? 1, totals.max() ?? 1)
        let plotBottom = f.height - 20 - labelRoom
        let plotHeight = plotBottom - f.top
        let py = { (y: Double) in plotBottom - y / yHigh * plotHeight }
        var s = header(f, title: title)
        for t in yTicks {
            let y = py(t)
            s += "<line x1=\"\(number(f.left))\" y1=\"\(number(y))\" x2=\"\(number(f.left + f.plotWidth))\" "
            s += "y2=\"\(number(y))\" stroke=\"#dddddd\"/>\n"
            s += "<text x=\"\(number(f.left - 6))\" y=\"\(number(y + 4))\" text-anchor=\"end\">\(tickLabel(t))</text>\n"
        }
        s +=
            "<line x1=\"\(number(f.left))\" y1=\"\(number(f.top))\" x2=\"\(number(f.left))\" y2=\"\(number(plotBottom))\" "
        s += "stroke=\"black\"/>\n"
        s += "<line x1=\"\(number(f.left))\" y1=\"\(number(plotBottom))\" x2=\"\(number(f.left + f.plotWidth))\" "
        s += "y2=\"\(number(plotBottom))\" stroke=\"black\"/>\n"
        let cy = f.top + plotHeight / 2
        s += "<text x=\"18\" y=\"\(number(cy))\" text-anchor=\"middle\" transform=\"rotate(-90 18 \(number(cy)))\">"
        s += "\(escape(yLabel))</text>\n"
        let slot = f.plotWidth / Double(max(categories.count, 1))
        let barWidth = max(2, slot * 0.7)
        for (i, category) in categories.enumerated() {
            let x = f.left + slot * Double(i) + (slot - barWidth) / 2
            var base = 0.0
            for (j, segment) in segments.enumerated() {
                let v = max(0, segment.values[i])
                guard v > 0 else { continue }
                let top = py(base + v)
                let h = py(base) - top
                s +=
                    "<rect x=\"\(number(x))\" y=\"\(number(top))\" width=\"\(number(barWidth))\" height=\"\(number(h))\" "
                s += "fill=\"\(color(j))\"><title>\(escape(category)): \(escape(segment.name)) "
                s += "\(String(format: "%.1f", v))</title></rect>\n"
                base += v
            }
            let lx = x + barWidth / 2
            let ly = plotBottom + 10
            let text = category.count > 30 ? String(category.prefix(29)) + "…" : category
            s += "<text x=\"\(number(lx))\" y=\"\(number(ly))\" text-anchor=\"end\" font-size=\"10\" "
            s += "transform=\"rotate(-50 \(number(lx)) \(number(ly)))\">\(escape(text))</text>\n"
        }
        s += legend(f, names: segments.map(\.name), colors: segments.indices.map(color))
        s += "</svg>\n"
        return s
    }
}
