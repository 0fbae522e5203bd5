// Loaded just before require.js on pages that embed widget state (_config.yml, nb_ipywidgets_js).
// The ipywidgets HTML manager (embed-amd.js) finds its icon fonts next to the URL that
// require.js gives its module, "@jupyter-widgets/html-manager/dist/...", by default relative to
// the page. Map that module to where the book serves it, _static/html-manager/, so the fonts
// load from the book's own files (also from a local folder, without network).
var require = {
  paths: {
    "@jupyter-widgets/html-manager/dist": new URL("html-manager", document.currentScript.src).href
  }
};
